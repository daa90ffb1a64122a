"""`manage.py ingest SLUG PATH...`: upload files (directories recursively) for a tenant."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tenants.management.commands._base import get_tenant

from ...models import DocumentStatus
from ...selectors import document_states
from ...services.documents import DocumentRejected, document_submit
from ...services.ingest import document_ingest

DONE = {DocumentStatus.READY, DocumentStatus.FAILED}


class Command(BaseCommand):
    help = "Ingest files and directories (recursively) into a tenant, then report the outcome."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--no-wait", action="store_true", help="queue and return at once")
        parser.add_argument(
            "--inline", action="store_true", help="ingest in this process (no worker needed)"
        )
        parser.add_argument("--timeout", type=int, default=1800, help="seconds to wait for workers")

    def handle(self, *args, slug, paths, no_wait, inline, timeout, **options):
        tenant = get_tenant(slug)
        files = _expand(paths)
        if not files:
            raise CommandError("No files found.")
        queued: dict[str, Path] = {}
        duplicates, failed = [], []
        for path in tqdm(files, desc="upload", unit="file", file=self.stderr):
            try:
                # --inline ingests here, so no worker is sent the same documents.
                submission = document_submit(
                    tenant=tenant, data=path.read_bytes(), filename=path.name, enqueue=not inline
                )
            except DocumentRejected as exc:
                failed.append((path, f"{exc.code}: {exc.detail}"))
                continue
            if submission.outcome == "duplicate":
                duplicates.append(path)
            else:
                queued[str(submission.document.id)] = path
        if inline:
            for document_id in tqdm(list(queued), desc="ingest", unit="doc", file=self.stderr):
                document_ingest(tenant=tenant, document_id=document_id)
        elif not no_wait and queued:
            self._wait(tenant, queued, timeout)
        ready = self._report(tenant, queued, failed, no_wait and not inline)
        self.stdout.write(
            f"{ready} ingested, {len(duplicates)} duplicates, {len(failed)} failed"
            + (f", {len(queued)} queued" if no_wait and not inline else "")
            + "."
        )
        for path, reason in failed:
            self.stdout.write(f"  failed {path}: {reason}")

    def _wait(self, tenant, queued: dict[str, Path], timeout: int) -> None:
        deadline = time.monotonic() + timeout
        with tqdm(total=len(queued), desc="ingest", unit="doc", file=self.stderr) as bar:
            while time.monotonic() < deadline:
                states = document_states(tenant=tenant, document_ids=queued)
                done = sum(1 for state in states if state["status"] in DONE)
                bar.update(done - bar.n)
                if done == len(queued):
                    return
                time.sleep(0.5)
        raise CommandError(
            f"Timed out after {timeout}s; is a worker running? (`make run` starts one, "
            "or use --inline)."
        )

    def _report(self, tenant, queued, failed, no_wait: bool) -> int:
        if no_wait:
            return 0
        docs = document_states(tenant=tenant, document_ids=queued)
        for doc in docs:
            if doc["status"] == DocumentStatus.FAILED:
                failed.append((queued[str(doc["id"])], doc["error"]))
        return sum(1 for doc in docs if doc["status"] == DocumentStatus.READY)


def _expand(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"No such file or directory: {raw}")
    return files
