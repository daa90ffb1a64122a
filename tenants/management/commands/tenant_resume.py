from django.core.management.base import BaseCommand

from ...services.provisioning import tenant_resume
from ._base import get_tenant


class Command(BaseCommand):
    help = "Resume a suspended tenant."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug, **options):
        tenant = tenant_resume(tenant=get_tenant(slug))
        self.stdout.write(self.style.SUCCESS(f"Tenant {tenant.slug} is {tenant.status}."))
