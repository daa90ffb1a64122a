"""The shipped example set: questions about Tenantry's own documentation (README.md and the
three pages under docs/), whose expected facts appear verbatim there, and questions those
documents cannot answer.

Why the project's own documents: they ship with every checkout, so anyone can measure answers
on a corpus they can read, and a test checks that every expected fact is still in them when the
documentation changes. The questions are short and each fact sits in one sentence (a setting,
a command, a number): what a 135M model can answer from one retrieved passage.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from tenants.models import Tenant

from ...models import DocumentStatus, EvalSet
from .importing import evalset_import

EXAMPLE_SET = "tenantry-docs"
EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "evalsets" / "tenantry_docs.jsonl"
# The documents the set asks about, by their path in the project, which is also their external
# id (the set's "relevant" entries name them so).
EXAMPLE_DOCUMENTS = (
    "README.md",
    "docs/architecture.md",
    "docs/check_isolation.md",
    "docs/pgbouncer.md",
)


def example_documents() -> dict[str, Path]:
    return {name: Path(settings.BASE_DIR) / name for name in EXAMPLE_DOCUMENTS}


def example_load(*, tenant: Tenant) -> EvalSet:
    """Upload the example documents into `tenant` and ingest them in this process (no worker
    needed; unchanged ones are duplicates and kept as they are), then import (or replace) the
    set "tenantry-docs"."""
    from ..documents import document_submit
    from ..ingest import document_ingest

    for external_id, path in example_documents().items():
        submission = document_submit(
            tenant=tenant,
            data=path.read_bytes(),
            filename=path.name,
            external_id=external_id,
            enqueue=False,
        )
        if submission.document.status != DocumentStatus.READY:
            status = document_ingest(tenant=tenant, document_id=submission.document.id)
            if status != "ready":
                raise RuntimeError(f"{external_id} could not be ingested ({status})")
    with EXAMPLE_FILE.open("rb") as lines:
        return evalset_import(
            tenant=tenant,
            name=EXAMPLE_SET,
            lines=lines,
            description="Tenantry's own documentation: README.md and docs/ (shipped example)",
        )
