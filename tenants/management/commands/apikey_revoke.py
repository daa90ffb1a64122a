from django.core.management.base import BaseCommand, CommandError

from ...models import ApiKey
from ...services.apikeys import apikey_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its prefix (tnt_xxxxxxxxxxxx) or id."

    def add_arguments(self, parser):
        parser.add_argument("key")

    def handle(self, *args, key, **options):
        try:
            revoked = apikey_revoke(prefix_or_id=key)
        except ApiKey.DoesNotExist:
            raise CommandError(f"No API key {key!r}.") from None
        self.stdout.write(self.style.SUCCESS(f"Revoked {revoked.prefix} of {revoked.tenant.slug}."))
