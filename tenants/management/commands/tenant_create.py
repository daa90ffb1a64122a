from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ...models import IsolationMode
from ...services.provisioning import ProvisioningError, tenant_create
from ...services.servers import ServerError


class Command(BaseCommand):
    help = "Create a tenant and its placement (pool rows, bridge schema or silo database)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--mode", required=True, choices=IsolationMode.values)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--dsn", default="", help="silo only: postgresql:// URL of another server"
        )
        parser.add_argument(
            "--server",
            default=None,
            help="a registered server (manage.py server_list); default: TENANT_PLACEMENT",
        )

    def handle(self, *args, slug, mode, name, dsn, server, **options):
        try:
            tenant = tenant_create(slug=slug, mode=mode, name=name, silo_dsn=dsn, server=server)
        except ServerError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {tenant.isolation_mode} tenant {tenant.slug} ({tenant.id}) "
                f"on {tenant.server_name}."
            )
        )
