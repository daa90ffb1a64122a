"""Hostile uploads, sent for real: each gets a clear 4xx problem (or is accepted and failed by
the worker with a reason), never a 5xx, never a hang, never a half-stored document.

Found by attacking a running instance: the upload request parsed the whole document (40 KB of
`**a ` held it 6.8 s); 1 MB of metadata was copied into every chunk and not charged to the
storage quota; NaN, `1e400`, `\\u0000` and 3,000-deep values in metadata and filters were
500s; a chunked upload was read as an empty body; a NUL or 10 kB in a file name was a 500.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections

from rag.filters import FilterError, compile_filters
from rag.models import Document, DocumentSource
from rag.selectors import document_list
from rag.services.documents import DocumentRejected, document_submit, metadata_check
from rag.services.search import chunk_search
from tenants.context import data_alias, tenant_context
from tenants.services.quotas import quota_set
from tests.helpers import MODES, bearer, wait_until

PROBLEM = "application/problem+json"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code, body
    return body


def stored_documents(tenant) -> int:
    with tenant_context(tenant):
        return Document.objects.count() + DocumentSource.objects.count()


def post_file(api, key, data: bytes, name="doc.md", **fields):
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return api.post(
        "/api/v1/documents", {"file": upload, **fields}, format="multipart", **bearer(key)
    )


def nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- 1. The request sniffs, the worker parses ----------------------------------------------


def test_the_request_does_not_parse_and_the_worker_fails_what_has_no_text(
    make_tenant, make_key, api, wait_done, worker
):
    key = make_key(make_tenant("pool"))
    textless = b"<html><body>" + b"<div>" * 2000 + b"<script>x()</script></body></html>"
    response = post_file(api, key, textless, name="page.html")
    # Parsed in the request, this was a 422 `no_text`: now the worker finds it out.
    assert response.status_code == 202, response.content
    assert response.json()["mime_type"] == "text/html" and response.json()["title"] == "page"
    failed = wait_done(key, response.json()["id"])
    assert failed["status"] == "failed" and failed["error"].startswith("no_text:"), failed


def test_a_pathological_markdown_upload_is_answered_at_once(make_tenant, make_key, api):
    """80 KB of `**a `: parsed in the request by the old quadratic pattern, about 27 s."""
    key = make_key(make_tenant("pool"))
    started = time.monotonic()
    response = post_file(api, key, b"# Hostile\n\n" + b"**a " * 20_000)
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.content
    assert elapsed < 5, f"the upload request took {elapsed:.1f}s"
    api.delete(f"/api/v1/documents/{response.json()['id']}", **bearer(key))  # spare the worker


# --- 2. Metadata: bounded, charged, kept on the document -----------------------------------


@pytest.mark.parametrize("route", ["json", "multipart"])
def test_metadata_past_the_limit_is_413_and_nothing_is_stored(
    route, make_tenant, make_key, api, settings
):
    settings.RAG_MAX_METADATA_BYTES = 1000
    tenant = make_tenant("pool")
    key = make_key(tenant)

    def send(text: str, metadata: dict):
        if route == "json":
            body = {"text": text, "metadata": metadata}
            return api.post("/api/v1/documents", body, format="json", **bearer(key))
        return post_file(api, key, text.encode(), metadata=json.dumps(metadata))

    at_limit = {"k": "x" * 991}  # {"k": "xxx..."} as PostgreSQL prints it: 1000 bytes
    assert metadata_check(at_limit) == 1000
    assert send("fits exactly", at_limit).status_code == 202
    body = problem(send("one byte over", {"k": "x" * 992}), 413, "metadata_too_large")
    assert "1000 bytes" in body["detail"]
    problem(send("far over", {"k": "x" * 1_000_000}), 413, "metadata_too_large")
    assert stored_documents(tenant) == 2  # the first document and its source only


@pytest.mark.parametrize("mode", MODES)
def test_metadata_bytes_count_against_the_storage_quota(mode, make_tenant, make_key, api):
    tenant = make_tenant(mode)
    quota_set(tenant=tenant, max_storage_bytes=400)
    key = make_key(tenant)

    def send(text: str, metadata: dict):
        body = {"text": text, "metadata": metadata}
        return api.post("/api/v1/documents", body, format="json", **bearer(key))

    metadata = {"note": 'é"\n' * 10, "n": [1, 2.5, None, True], "o": {}}
    charged = metadata_check(metadata)
    assert send("t" * 100, metadata).status_code == 202
    with tenant_context(tenant):
        # What the upload was charged is what PostgreSQL counts for the quota from then on.
        assert Document.objects.get().metadata_bytes == charged
    used = 100 + charged
    assert api.get("/api/v1/usage", **bearer(key)).json()["storage_bytes"]["used"] == used
    room = 400 - used
    assert send("e" * room, {}).status_code == 202  # no metadata, no charge: exactly full
    refused = send("z", {"a": 1})
    problem(refused, 413, "storage_quota_exceeded")
    assert api.get("/api/v1/usage", **bearer(key)).json()["storage_bytes"]["used"] == 400


def _chunk_metadata_columns(tenant) -> int:
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'rag_chunk' "
            "AND column_name = 'metadata' AND table_schema = current_schema()"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_search_filters_on_and_returns_the_documents_own_metadata(
    mode, make_tenant, make_key, api, wait_done, worker
):
    tenant = make_tenant(mode)
    key = make_key(tenant)
    created = api.post(
        "/api/v1/documents",
        {"text": "Barn owls hunt voles at dusk.", "metadata": {"lang": "en"}},
        format="json",
        **bearer(key),
    ).json()
    assert wait_done(key, created["id"])["status"] == "ready"
    assert _chunk_metadata_columns(tenant) == 0  # migration 0009 reached this placement

    def hits(filt):
        body = {"query": "owls", "mode": "keyword", "filter": filt}
        response = api.post("/api/v1/search", body, format="json", **bearer(key))
        assert response.status_code == 200, response.content
        return [(hit["document_id"], hit["metadata"]) for hit in response.json()["results"]]

    assert hits({"lang": "en"}) == [(created["id"], {"lang": "en"})]
    # A chunk's copy would still say "en": the filter and the hit read the document.
    with tenant_context(tenant):
        Document.objects.filter(pk=created["id"]).update(metadata={"lang": "fr"})
    assert hits({"lang": "en"}) == []
    assert hits({"lang": "fr"}) == [(created["id"], {"lang": "fr"})]


# --- 3. Hostile values in filters and metadata ---------------------------------------------

HOSTILE_FILTERS = {
    "nan": {"year": float("nan")},
    "infinity": {"year": float("inf")},
    "nan-in-range": {"year": {"gte": float("nan")}},
    "infinity-in-list": {"year": {"in": [1, float("-inf")]}},
    "nul-value": {"lang": "en\x00"},
    "nul-in-list": {"lang": {"in": ["\x00"]}},
    "lone-surrogate": {"lang": "\ud800"},
    "nul-key": {"la\x00ng": "en"},
    "newline-key": {"lang\n": {"gt": 1}},
    "3000-deep": {"lang": {"in": nested(3000)}},
    "quote-key": {"' OR '1'='1": "en"},
    "comment-key": {"lang);--": "en"},
    "jsonpath-key": {'a" ? (@ > 0) || $."b': {"gt": 1}},
    "too-many-values": {"lang": {"in": ["x"] * 101}},
}


@pytest.mark.parametrize("filters", HOSTILE_FILTERS.values(), ids=HOSTILE_FILTERS.keys())
def test_hostile_filters_are_filter_errors_on_every_route(filters, make_tenant):
    """The console, the commands and Python callers hand over Python values: the filter is
    refused before PostgreSQL sees it (NaN or NUL in a ::jsonb cast was a 500)."""
    tenant = make_tenant("pool")
    with pytest.raises(FilterError):
        compile_filters(filters, column="d.metadata")
    with pytest.raises(FilterError):
        chunk_search(tenant=tenant, query="owls", mode="keyword", filters=filters)
    with pytest.raises(FilterError):
        document_list(tenant=tenant, metadata=filters)


HOSTILE_METADATA = {
    "nan": {"score": float("nan")},
    "infinity": {"score": float("inf")},
    "nul-value": {"note": "owls\x00"},
    "nul-key": {"no\x00te": 1},
    "lone-surrogate": {"note": "\udfff"},
    "3000-deep": {"tree": nested(3000)},
    "not-json": {"when": object()},
    "huge-integer": {"n": 10**4000},
    "non-string-key": {1: "one"},
}


@pytest.mark.parametrize("metadata", HOSTILE_METADATA.values(), ids=HOSTILE_METADATA.keys())
def test_hostile_metadata_is_422_invalid_metadata_for_every_caller(metadata, make_tenant):
    tenant = make_tenant("pool")
    with pytest.raises(DocumentRejected) as refused:
        document_submit(tenant=tenant, data=b"Owls hunt at night.", metadata=metadata)
    assert (refused.value.status, refused.value.code) == (422, "invalid_metadata")
    assert stored_documents(tenant) == 0


RAW_METADATA = {
    "NaN": '{"a": NaN}',
    "1e400": '{"a": 1e400}',
    "nul": '{"a": "owls\\u0000"}',
    "3000-deep": '{"a": ' + "[" * 3000 + "]" * 3000 + "}",
}


@pytest.mark.parametrize("route", ["json", "multipart"])
@pytest.mark.parametrize("raw", RAW_METADATA.values(), ids=RAW_METADATA.keys())
def test_hostile_metadata_over_http_is_a_4xx_problem(raw, route, make_tenant, make_key, api):
    """As the client sends it: JSON text is refused by the API's strict JSON (400), whichever
    way it comes; nothing is stored."""
    tenant = make_tenant("pool")
    key = make_key(tenant)
    if route == "json":
        body = '{"text": "Owls hunt at night.", "metadata": ' + raw + "}"
        response = api.generic(
            "POST", "/api/v1/documents", body, content_type="application/json", **bearer(key)
        )
    else:
        response = post_file(api, key, b"Owls hunt at night.", metadata=raw)
    assert response.status_code in (400, 422), response.content[:300]
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] in {"invalid_json", "invalid_request", "invalid_metadata"}
    assert stored_documents(tenant) == 0


def test_sql_metacharacters_in_filters_find_nothing_of_another_tenant(
    make_tenant, make_key, api, wait_done, worker
):
    mine, theirs = make_key(make_tenant("pool")), make_key(make_tenant("pool"))
    ids = {}
    for key, text in ((mine, "Tawny owls nest in oaks."), (theirs, "Snowy owls nest on tundra.")):
        body = {"text": text, "metadata": {"lang": "en", "tag": "birds"}}
        created = api.post("/api/v1/documents", body, format="json", **bearer(key)).json()
        ids[key] = created["id"]
        assert wait_done(key, created["id"])["status"] == "ready"

    def search(filt):
        body = {"query": "owls nest", "mode": "keyword", "filter": filt}
        return api.post("/api/v1/search", body, format="json", **bearer(mine))

    def found(filt) -> set[str]:
        response = search(filt)
        assert response.status_code == 200, response.content
        return {hit["document_id"] for hit in response.json()["results"]}

    assert found({"lang": "en"}) == {ids[mine]}
    for value in ("' OR '1'='1", "en' OR 'x'='x", "en');--", "en\"}') OR TRUE --"):
        assert found({"lang": value}) == set()
        assert found({"tag": {"in": [value, "x');DROP TABLE rag_chunk;--"]}}) == set()
        listed = api.get(
            "/api/v1/documents", {"metadata": json.dumps({"lang": value})}, **bearer(mine)
        )
        assert listed.status_code == 200 and listed.json()["count"] == 0
    for bad_key in ("' OR '1'='1", "lang);--", 'lang" ? (@ == "en") || $."x'):
        problem(search({bad_key: "en"}), 422, "invalid_filter")
        problem(search({bad_key: {"gte": 1}}), 422, "invalid_filter")
    assert found({"lang": "en"}) == {ids[mine]}  # and the store is intact


# --- 4. Hostile HTTP: chunked bodies, many parts, names ------------------------------------

CHUNK = b"x" * (64 * 1024)
CHUNKED_BYTES = 32 * 1024 * 1024  # past RAG_MAX_UPLOAD_BYTES (20 MiB)


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _settled(process: psutil.Process) -> int:
    """The worker's RSS once it stops growing: it loads its models in a thread at start."""
    samples: list[int] = []

    def steady():
        samples.append(process.memory_info().rss)
        recent = samples[-6:]
        return len(recent) == 6 and max(recent) - min(recent) < 2 * 1024 * 1024

    wait_until(steady, timeout=120, interval=0.5, message="the web worker's memory kept growing")
    return samples[-1]


def test_a_chunked_upload_is_411_and_the_server_never_buffers_it(web_server, make_tenant, make_key):
    """Django reads a body without Content-Length as empty, so a chunked upload is refused
    (411) rather than judged on nothing; the web worker's peak memory does not grow with it."""
    key = make_key(make_tenant("pool"))
    workers = psutil.Process(web_server.proc.pid).children()
    assert workers, "no gunicorn worker"
    baselines = {w.pid: _settled(w) for w in workers}
    for worker_process in workers:  # peak RSS (VmHWM) := current RSS
        Path(f"/proc/{worker_process.pid}/clear_refs").write_text("5")

    host, port = web_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/api/v1/documents")
    connection.putheader("Authorization", f"Bearer {key}")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()

    def send_body():
        try:
            for _ in range(CHUNKED_BYTES // len(CHUNK)):
                connection.sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            connection.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may hang up on the rest: refusing it is the point

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    try:
        response = connection.getresponse()
        status, kind, body = response.status, response.getheader("Content-Type"), response.read()
        sender.join(timeout=120)
        assert not sender.is_alive(), "the server neither read nor refused the body"
    finally:
        connection.close()
    assert status == 411 and kind == PROBLEM, body[:300]
    assert json.loads(body)["code"] == "length_required"
    for worker_process in workers:
        growth = _peak_rss(worker_process.pid) - baselines[worker_process.pid]
        assert growth < CHUNKED_BYTES // 4, f"peak RSS grew by {growth / 2**20:.1f} MiB"


def test_thousands_of_multipart_parts_are_a_400_problem(make_tenant, make_key, api):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    fields = {f"f{i}": "x" for i in range(3000)}  # DATA_UPLOAD_MAX_NUMBER_FIELDS: 1000
    document = SimpleUploadedFile("a.txt", b"Owls hunt at night.")
    response = api.post(
        "/api/v1/documents", {"file": document, **fields}, format="multipart", **bearer(key)
    )
    problem(response, 400, "too_many_fields")
    files = {f"f{i}": SimpleUploadedFile(f"{i}.txt", b"x") for i in range(150)}  # FILES: 100
    response = api.post("/api/v1/documents", files, format="multipart", **bearer(key))
    problem(response, 400, "too_many_fields")
    assert stored_documents(tenant) == 0


def test_names_lose_controls_and_bidi_overrides_and_are_bounded(make_tenant, make_key, api):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    # Over the API: the title is cleaned; Django already cleans and cuts multipart file names.
    response = post_file(
        api, key, b"Owls hunt at night.", name="a" * 10_000 + ".md", title="Owl \u202efdp.exe"
    )
    assert response.status_code == 202, response.content
    assert response.json()["title"] == "Owl fdp.exe"
    problem(post_file(api, key, b"Second.", title="nul\x00title"), 400, "invalid_request")
    problem(post_file(api, key, b"Third.", title="t" * 10_000), 400, "invalid_request")
    long_note = {"note": "é" * 5000}  # 10 kB of text is fine within the metadata limit
    kept = post_file(api, key, b"Fourth.", metadata=json.dumps(long_note))
    assert kept.status_code == 202 and kept.json()["metadata"] == long_note

    # Through the service (the console and `ingest` pass names through it): a NUL in a file
    # name, or 10 kB of it, was a 500 from PostgreSQL.
    submission = document_submit(
        tenant=tenant,
        data=b"Barn owls hunt voles.",
        filename="dir/bad\x00\u202ename" + "x" * 10_000 + ".txt",
        title="Barn\x00 \u2066owls\u2069\n",
    )
    with tenant_context(tenant):
        source = DocumentSource.objects.get(document_id=submission.document.id)
        title = Document.objects.get(pk=submission.document.id).title
    assert title == "Barn owls"
    assert len(source.filename) == 255 and source.filename.startswith("badname")
    assert source.filename.endswith(".txt") and "\x00" not in source.filename
