from django.core.management.base import BaseCommand

from ...services.provisioning import tenant_suspend
from ._base import get_tenant


class Command(BaseCommand):
    help = "Suspend a tenant: its API calls get 403 tenant_suspended; its data stays."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug, **options):
        tenant = tenant_suspend(tenant=get_tenant(slug))
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug} is {tenant.status}."))
