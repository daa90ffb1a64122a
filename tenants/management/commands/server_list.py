import json

from django.core.management.base import BaseCommand

from ...services.servers import server_list


class Command(BaseCommand):
    help = "Data-plane servers with their tenants (by mode), chunks and bytes."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, as_json: bool = False, **options):
        loads = server_list()
        if as_json:
            rows = [
                {
                    "name": load.name,
                    "where": load.where,
                    "tenants": load.tenants,
                    "chunks": load.chunks,
                    "bytes": load.bytes,
                    "unreachable": load.unreachable,
                }
                for load in loads
            ]
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(f"{'SERVER':<16} {'TENANTS':>7} {'CHUNKS':>10} {'BYTES':>14}  WHERE")
        for load in loads:
            modes = ", ".join(f"{m} {n}" for m, n in sorted(load.tenants.items()))
            line = (
                f"{load.name:<16} {load.tenant_count:>7} {load.chunks:>10} {load.bytes:>14}  "
                f"{load.where}" + (f"  ({modes})" if modes else "")
            )
            if load.unreachable:
                line += f"  unreachable: {', '.join(load.unreachable)}"
            self.stdout.write(line)
