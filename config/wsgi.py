"""WSGI entry point (gunicorn). Refuses to serve if the app role could bypass row-level security."""

import os

from django.core.wsgi import get_wsgi_application

from config.servers import ensure_environment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
ensure_environment()

application = get_wsgi_application()

from tenants.roles import assert_app_role_cannot_bypass_rls  # noqa: E402

assert_app_role_cannot_bypass_rls()
