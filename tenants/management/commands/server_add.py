from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ...services.servers import ServerError, server_add


class Command(BaseCommand):
    help = (
        "Register a data-plane PostgreSQL server. The DSN names the owner role and the "
        "database for the server's pool tables and bridge schemas (created if missing)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--dsn", required=True, help="postgresql://OWNER:PASSWORD@HOST/DB")

    def handle(self, *args, name, dsn, **options):
        try:
            server = server_add(name=name, dsn=dsn)
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        except ServerError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Added server {server.name}."))
