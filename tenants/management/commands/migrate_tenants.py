from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ...models import DataServer, IsolationMode, Tenant
from ...services.dataplane import dataplane_migrate
from ...services.servers import server_migrate
from ...sweep import each_tenant


class Command(BaseCommand):
    help = (
        "Apply data-plane migrations to every registered server's pool tables, then to every "
        "bridge schema and silo database. Resumable: each placement records what it has "
        "applied, so a re-run continues where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="only these tenants (default: all)")

    def handle(self, *args, slugs, **options):
        failed = []
        if not slugs:
            # The platform database's pool tables go with `manage.py migrate`; other servers'
            # pool tables here, before the tenants that may use them.
            for server in DataServer.objects.all():
                try:
                    applied = server_migrate(server=server)
                except Exception as exc:
                    failed.append(f"server {server.name}")
                    self.stdout.write(f"server {server.name} (pool): FAILED: {exc}")
                    continue
                result = f"applied {', '.join(applied)}" if applied else "up to date"
                self.stdout.write(f"server {server.name} (pool): {result}")
        tenants = Tenant.objects.exclude(isolation_mode=IsolationMode.POOL)
        if slugs:
            tenants = tenants.filter(slug__in=slugs)
        tenants = list(tenants.select_related("server"))
        bar = tqdm(
            tenants, desc="migrate_tenants", unit="tenant", file=self.stderr, disable=not tenants
        )
        # One broken tenant must not stop the rest: each is reported and the next one runs.
        migrated = each_tenant(bar, lambda tenant: dataplane_migrate(tenant=tenant), bind=False)
        for tenant, outcome in migrated:
            if not outcome.ok:
                failed.append(tenant.slug)
                bar.write(
                    f"{tenant.slug} ({tenant.isolation_mode}): FAILED: {outcome.error}",
                    file=self.stdout,
                )
                continue
            applied = outcome.value
            result = f"applied {', '.join(applied)}" if applied else "up to date"
            bar.write(f"{tenant.slug} ({tenant.isolation_mode}): {result}", file=self.stdout)
        self.stdout.write(f"{len(tenants) - len(failed)} of {len(tenants)} tenants migrated.")
        if failed:
            raise CommandError(
                f"Failed: {', '.join(failed)}. Fix and re-run; done tenants are skipped."
            )
