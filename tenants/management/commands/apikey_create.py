from django.core.management.base import BaseCommand, CommandError

from ...services.apikeys import apikey_create
from ._base import get_tenant


class Command(BaseCommand):
    help = "Issue an API key. The key is printed alone on the last line and never shown again."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--scopes", required=True, help="comma-separated: ingest,query,admin")
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--name", default="")

    def handle(self, *args, slug, scopes, expires_days, name, **options):
        tenant = get_tenant(slug)
        try:
            key, raw = apikey_create(
                tenant=tenant,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                expires_in_days=expires_days,
                name=name,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        self.stdout.write(
            f"Key {key.prefix} for {tenant.slug}: scopes {','.join(key.scopes)}, expires {expiry}."
        )
        self.stdout.write(raw)
