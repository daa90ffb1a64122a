from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ...models import Tenant
from ...services.isolation_audit import IsolationAudit


class Command(BaseCommand):
    help = (
        "Audit tenant isolation in every placement: row-level security in the catalog, then "
        "live probes as the app role in transactions that are rolled back. Changes nothing. "
        "Exits 1 on any finding (see docs/check_isolation.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tenant", metavar="SLUG", help="only this tenant's placement (pool: bound to it)"
        )
        parser.add_argument("--json", action="store_true", help="print a machine-readable report")

    def handle(self, *args, tenant, json, **options):
        subject = None
        if tenant:
            # As the owner: the app role's connections refuse to open when the role is unsafe,
            # which is one of the things this command must be able to report.
            subject = Tenant.objects.using("owner").filter(slug=tenant).first()
            if subject is None:
                raise CommandError(f"No tenant with slug {tenant!r}.", returncode=2)
        with IsolationAudit(tenant=subject) as audit:
            bar = tqdm(
                audit.targets,
                desc="check_isolation",
                unit="placement",
                file=self.stderr,
                disable=len(audit.targets) < 2,
            )
            for target in bar:
                bar.set_postfix_str(target.label, refresh=False)
                result = audit.check(target)
                if not json:
                    # Clear the bar (stderr) while the line goes to stdout, then redraw it.
                    with tqdm.external_write_mode(file=self.stderr):
                        self.stdout.write(result.summary_line())
        report = audit.report
        self.stdout.write(report.to_json() if json else report.as_text())
        if not report.clean:
            raise CommandError(f"{len(report.findings)} isolation finding(s).", returncode=1)
