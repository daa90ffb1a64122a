from django.core.management.base import BaseCommand, CommandError

from ...services.quotas import QUOTA_FIELDS, quota_get, quota_set
from ._base import get_tenant


class Command(BaseCommand):
    help = (
        "Show a tenant's quotas, or change some with --set name=value (repeatable, or several "
        f"after one --set). Quotas: {', '.join(QUOTA_FIELDS)}."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--set",
            dest="assignments",
            nargs="+",
            action="extend",
            default=[],
            metavar="NAME=VALUE",
            help="e.g. --set search_per_hour=20 max_storage_bytes=1073741824",
        )

    def handle(self, *args, slug, assignments, **options):
        tenant = get_tenant(slug)
        if assignments:
            values = {}
            for assignment in assignments:
                name, sep, value = assignment.partition("=")
                if not sep or not name.strip():
                    raise CommandError(f"Expected NAME=VALUE, got {assignment!r}.")
                values[name.strip()] = value.strip()
            try:
                quota = quota_set(tenant=tenant, **values)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(f"Quotas of {tenant.slug} updated."))
        else:
            quota = quota_get(tenant=tenant)
        width = max(len(name) for name in QUOTA_FIELDS)
        for name in QUOTA_FIELDS:
            self.stdout.write(f"{name.ljust(width)}  {getattr(quota, name)}")
