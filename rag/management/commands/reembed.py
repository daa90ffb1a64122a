"""`manage.py reembed [SLUG...] [--backend NAME]`: move tenants' chunks to an embedding backend
(rag.services.reembed), each tenant serving its searches and uploads meanwhile."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tenants.models import Tenant, TenantStatus
from tenants.sweep import each_tenant

from ... import embedders
from ...services.reembed import tenant_reembed


class Command(BaseCommand):
    help = (
        "Re-embed tenants' chunks with an embedding backend (default EMBEDDING_BACKEND) and "
        "switch their queries to it once every chunk has its new vector. Tenants keep "
        "serving meanwhile; an interrupted run resumes where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "slugs",
            nargs="*",
            help="only these tenants (default: every tenant not on the backend yet)",
        )
        parser.add_argument("--backend", default=None, choices=embedders.BACKENDS)

    def handle(self, *args, slugs, backend, **options):
        target = backend or settings.EMBEDDING_BACKEND
        tenants = Tenant.objects.filter(status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED])
        if slugs:
            tenants = Tenant.objects.filter(slug__in=slugs)
            missing = set(slugs) - set(tenants.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No tenant with slug {', '.join(sorted(missing))}.")
        else:
            tenants = tenants.exclude(embedding_backend=target)
        tenants = list(tenants.select_related("server"))
        failed = []
        for tenant, outcome in each_tenant(tenants, lambda t: self._one(t, target), bind=False):
            if not outcome.ok:
                failed.append(tenant.slug)
                self.stdout.write(f"{tenant.slug}: FAILED: {outcome.error}")
                continue
            result = outcome.value
            if result.switched:
                line = f"{result.chunks} chunks re-embedded, {result.source} -> {result.target}"
            else:
                line = f"already on {result.target}"
            self.stdout.write(f"{tenant.slug}: {line}")
        self.stdout.write(f"{len(tenants) - len(failed)} of {len(tenants)} tenants on {target}.")
        if failed:
            raise CommandError(f"Failed: {', '.join(failed)}. Re-run to resume them.")

    def _one(self, tenant: Tenant, target: str):
        with tqdm(desc=tenant.slug, unit="chunk", file=self.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            return tenant_reembed(tenant=tenant, target=target, progress=progress)
