"""`manage.py search SLUG "query" [--k N] [--mode M] [--group-by document]`: the API's
search, from a terminal."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.management.commands._base import get_tenant
from tenants.services.provisioning import TenantNotActive

from ...filters import FilterError
from ...services.search import GROUP_BY, MODES, search_run


class Command(BaseCommand):
    help = "Search a tenant's documents (hybrid, vector or keyword)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("query")
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--mode", choices=MODES, default="hybrid")
        parser.add_argument(
            "--group-by", choices=GROUP_BY, default="chunk", help="document: k documents"
        )

    def handle(self, *args, slug, query, k, mode, group_by, **options):
        if not 1 <= k <= 50:
            raise CommandError("--k must be between 1 and 50.")
        try:
            # Metered and logged like the API's search (source "cli").
            result = search_run(
                tenant=get_tenant(slug),
                query=query,
                k=k,
                mode=mode,
                group_by=group_by,
                source="cli",
            )
        except (FilterError, TenantNotActive) as exc:
            raise CommandError(str(exc)) from exc
        if not result.hits:
            self.stdout.write("No results.")
        if result.documents is not None:
            for n, document in enumerate(result.documents, start=1):
                self.stdout.write(
                    f"{n}. [{document.score:.4f}] {document.title} (document "
                    f"{document.document_id}, {len(document.chunks)} chunks)"
                )
                for hit in document.chunks:
                    self.stdout.write("   - " + hit.text[:200].replace("\n", " "))
            return
        for n, hit in enumerate(result.hits, start=1):
            where = " > ".join(p for p in (hit.title, hit.heading_path) if p)
            self.stdout.write(f"{n}. [{hit.score:.4f}] {where} (document {hit.document_id})")
            self.stdout.write("   " + hit.text[:300].replace("\n", " "))
        timings = ", ".join(f"{name} {value:.1f}" for name, value in result.timings.items())
        self.stdout.write(f"timings (ms): {timings}")
