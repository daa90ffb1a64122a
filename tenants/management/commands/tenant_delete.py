from django.core.management.base import BaseCommand, CommandError

from ...services.provisioning import tenant_delete
from ._base import get_tenant


class Command(BaseCommand):
    help = "Delete a tenant and all of its data (rows, schema or database). Needs --yes."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")

    def handle(self, *args, slug, yes, **options):
        tenant = get_tenant(slug)
        if not yes:
            raise CommandError(f"Deleting {slug} removes all of its data. Re-run with --yes.")
        tenant_delete(tenant=tenant)
        self.stdout.write(
            self.style.SUCCESS(f"Deleted tenant {slug} and its {tenant.isolation_mode} data.")
        )
