"""Settings for `make test`: a throwaway embedded PostgreSQL and Redis, never the ones in var/.

DATA_DIR must be chosen before settings import, because settings start the embedded servers.
"""

import os
import tempfile

if "DATABASE_URL" not in os.environ:
    os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="tenantry-test-"))

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast console logins
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
WHITENOISE_USE_FINDERS = True
