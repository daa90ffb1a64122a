"""`manage.py ingest` and `manage.py search`: same services as the API, from a terminal."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Sum

from rag.models import Document
from rag.selectors import document_list, document_states, querylog_list
from rag.tokenizer import count_tokens
from tenants.context import tenant_context
from tenants.models import UsageKind, UsageRecord
from tests.rag.corpus import DOCUMENTS


def _ids(tenant) -> list:
    return [d.pk for d in document_list(tenant=tenant).documents]


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "nested").mkdir()
    (tmp_path / "tides.md").write_text(DOCUMENTS["tides"])
    (tmp_path / "nested" / "bees.html").write_text(
        "<html><head><title>Bees</title></head><body><h1>Bees</h1><p>"
        + DOCUMENTS["bees"]
        + "</p></body></html>"
    )
    (tmp_path / "nested" / "copy-of-tides.txt").write_text(DOCUMENTS["tides"])
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (tmp_path / "empty.txt").write_text("   ")
    return tmp_path


def test_ingest_directory_through_the_worker_and_search(make_tenant, folder, worker):
    tenant = make_tenant("silo")
    out, err = _run("ingest", tenant.slug, str(folder))
    assert "2 ingested, 1 duplicates, 2 failed." in out
    assert "photo.png: unsupported_type" in out and "empty.txt: empty_document" in out
    assert "upload" in err and "ingest" in err  # progress bars went to stderr

    out, _ = _run("search", tenant.slug, "How do bees tell the hive where flowers are?", "--k", "2")
    lines = out.splitlines()
    assert lines[0].startswith("1. [") and "Bees" in lines[0]
    assert "waggle dance" in lines[1]
    assert lines[-1].startswith("timings (ms): embed_ms")

    out, _ = _run("search", tenant.slug, "moon", "--mode", "keyword")
    assert "Tides" in out and "Bees" not in out

    # Metered and logged as the API's search is, the source saying where it came from.
    logged = querylog_list(tenant=tenant, kind="search")
    assert [(log.source, log.mode, log.question) for log in logged] == [
        ("cli", "keyword", "moon"),
        ("cli", "hybrid", "How do bees tell the hive where flowers are?"),
    ]
    # The ledger sums an hour's rows per key (here: no key): two requests, and the tokens of
    # the hybrid query alone (keyword search embeds nothing).
    searches = UsageRecord.objects.filter(tenant_id=tenant.pk, kind=UsageKind.SEARCH)
    totals = searches.aggregate(requests=Sum("requests"), tokens=Sum("embedding_tokens"))
    question = "How do bees tell the hive where flowers are?"
    assert totals == {"requests": 2, "tokens": count_tokens(question)}


def test_ingest_inline_is_not_also_sent_to_a_worker(make_tenant, folder, published):
    tenant = make_tenant("pool")
    _run("ingest", tenant.slug, str(folder / "tides.md"), "--inline")
    assert published == []  # no message for a worker to race this process with
    # The document was ingested once, here.
    [state] = document_states(tenant=tenant, document_ids=_ids(tenant))
    assert state["status"] == "ready"
    with tenant_context(tenant):
        assert Document.objects.get().attempts == 1


def test_ingest_inline_needs_no_worker(make_tenant, folder):
    tenant = make_tenant("pool")
    out, _ = _run("ingest", tenant.slug, str(folder / "tides.md"), "--inline")
    assert out.startswith("1 ingested, 0 duplicates, 0 failed.")


def test_commands_refuse_bad_arguments(make_tenant, tmp_path):
    tenant = make_tenant("pool")
    with pytest.raises(CommandError, match="No such file"):
        _run("ingest", tenant.slug, str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="--k"):
        _run("search", tenant.slug, "x", "--k", "0")
    with pytest.raises(CommandError, match="No tenant"):
        _run("search", "nobody", "x")
