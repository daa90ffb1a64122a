"""Create the console admin and a demo tenant with an API key, only if they are missing.

Used by `make run`. The generated password and key are kept in DATA_DIR/credentials.json
(mode 0600) because only a hash of a key is stored and it could not be shown again otherwise.
"""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from ...models import IsolationMode, Tenant
from ...services.apikeys import apikey_create
from ...services.provisioning import tenant_create

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create the admin user and the demo tenant (with a key) if missing; print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url, **options):
        path = settings.DATA_DIR / "credentials.json"
        creds = json.loads(path.read_text()) if path.exists() else {}
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            creds["admin_password"] = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", creds["admin_password"])
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant = tenant_create(slug=DEMO_SLUG, mode=IsolationMode.POOL, name="Demo tenant")
        if not tenant.api_keys.filter(revoked_at__isnull=True).exists() or "demo_key" not in creds:
            _, creds["demo_key"] = apikey_create(
                tenant=tenant, scopes=["ingest", "query", "admin"], name="demo"
            )
        path.touch(mode=0o600)
        path.write_text(json.dumps(creds))
        password = creds.get("admin_password", "(set earlier)")
        key = creds["demo_key"]
        self.stdout.write(
            f"\n  Console:  {base_url}/console/  (user admin, password {password})\n"
            f"  API docs: {base_url}/api/docs/\n"
            f"  Demo key: {key}\n"
            f'  Try:      curl -H "Authorization: Bearer {key}" {base_url}/api/v1/tenant\n'
        )
