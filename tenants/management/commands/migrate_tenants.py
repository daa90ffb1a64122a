from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ... import placement
from ...models import IsolationMode, Tenant
from ...services.dataplane import dataplane_migrate


class Command(BaseCommand):
    help = (
        "Apply data-plane migrations to every bridge schema and silo database. Resumable: each "
        "placement records what it has applied, so a re-run continues where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="only these tenants (default: all)")

    def handle(self, *args, slugs, **options):
        tenants = Tenant.objects.exclude(isolation_mode=IsolationMode.POOL)
        if slugs:
            tenants = tenants.filter(slug__in=slugs)
        tenants = list(tenants)
        failed = []
        bar = tqdm(
            tenants, desc="migrate_tenants", unit="tenant", file=self.stderr, disable=not tenants
        )
        for tenant in bar:
            bar.set_postfix_str(tenant.slug)
            try:
                applied = dataplane_migrate(tenant=tenant)
            except Exception as exc:  # report and go on: one broken tenant must not stop the rest
                failed.append(tenant.slug)
                bar.write(
                    f"{tenant.slug} ({tenant.isolation_mode}): FAILED: {exc}", file=self.stdout
                )
                continue
            finally:
                placement.release(tenant)  # one silo connection at a time, not one per silo
            result = f"applied {', '.join(applied)}" if applied else "up to date"
            bar.write(f"{tenant.slug} ({tenant.isolation_mode}): {result}", file=self.stdout)
        self.stdout.write(f"{len(tenants) - len(failed)} of {len(tenants)} tenants migrated.")
        if failed:
            raise CommandError(
                f"Failed: {', '.join(failed)}. Fix and re-run; done tenants are skipped."
            )
