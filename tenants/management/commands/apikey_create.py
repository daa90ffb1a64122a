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
        parser.add_argument(
            "--tokens-per-hour",
            type=int,
            default=None,
            help="the key's own token budget per hour and model (default: only the tenant's)",
        )
        parser.add_argument(
            "--tokens-per-day",
            type=int,
            default=None,
            help="the key's own token budget per UTC day and model (default: only the tenant's)",
        )

    def handle(
        self, *args, slug, scopes, expires_days, name, tokens_per_hour, tokens_per_day, **options
    ):
        tenant = get_tenant(slug)
        try:
            key, raw = apikey_create(
                tenant=tenant,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                expires_in_days=expires_days,
                name=name,
                tokens_per_hour=tokens_per_hour,
                tokens_per_day=tokens_per_day,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        budgets = "".join(
            f", {value} tokens per {period}"
            for period, value in (("hour", key.tokens_per_hour), ("day", key.tokens_per_day))
            if value is not None
        )
        self.stdout.write(
            f"Key {key.prefix} for {tenant.slug}: scopes {','.join(key.scopes)}, expires {expiry}"
            f"{budgets}."
        )
        self.stdout.write(raw)
