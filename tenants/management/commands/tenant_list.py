from django.core.management.base import BaseCommand

from ...models import Tenant


class Command(BaseCommand):
    help = "List tenants with their isolation mode, server and status."

    def handle(self, *args, **options):
        rows = [("SLUG", "MODE", "SERVER", "STATUS", "NAME", "ID")]
        rows += [
            (t.slug, t.isolation_mode, t.server_name, t.status, t.name, str(t.id))
            for t in Tenant.objects.select_related("server")
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )
