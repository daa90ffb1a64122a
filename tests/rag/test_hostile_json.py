"""Hostile JSON and hostile HTTP, sent for real: every refusal is a small 4xx in the API's own
shape (problem+json under /api/, OpenAI's under /v1/), never a 500, never HTML, never a hang.

Found by attacking a running instance: `document_ids` of 250,000 strings took 7.7 s and an
8.6 MB error body; `NaN`, `1e400`, `\\u0000` and 3,000-deep nesting reached the views (the
last as a RecursionError, a 500); JSON bodies could be 21 MiB; a bad Host header and Django's
other early refusals answered an HTML page.
"""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from django.test import Client

from tests.helpers import bearer

PROBLEM = "application/problem+json"

# Raw JSON values the API must refuse, as they appear on the wire.
HOSTILE = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "nul": '"owls\\u0000"',
    "lone-surrogate": '"\\ud800"',
    "3000-deep": "[" * 3000 + "]" * 3000,
}

# Where each endpoint carries a value of the caller's choosing (`%s`: the hostile value).
BODIES = {
    "search-filter": ("/api/v1/search", '{"query": "owls", "filter": {"year": %s}}'),
    "answer": ("/api/v1/answer", '{"question": "What do owls eat?", "k": 3, "filter": {"t": %s}}'),
    "chat-messages": (
        "/v1/chat/completions",
        '{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": %s}]}]}',
    ),
    "embeddings-input": ("/v1/embeddings", '{"model": "all-MiniLM-L6-v2", "input": [%s]}'),
}


@pytest.fixture(scope="module")
def query_key(django_db_setup, django_db_blocker):
    """One pool tenant's key for the module: these requests are refused before any tenant
    data is touched, so they can share it."""
    from tenants.services.apikeys import apikey_create
    from tenants.services.provisioning import tenant_create, tenant_delete

    with django_db_blocker.unblock():
        tenant = tenant_create(slug=f"hostile-{uuid.uuid4().hex[:8]}", mode="pool")
        yield apikey_create(tenant=tenant, scopes=["query"])[1]
        tenant_delete(tenant=tenant)


def assert_refused(response, status: int, code: str, path: str) -> dict:
    """The API's refusal: problem+json under /api/, OpenAI's error object under /v1/."""
    assert response.status_code == status, response.content[:500]
    body = response.json()
    if path.startswith("/v1/"):
        assert response["Content-Type"] == "application/json"
        error = body["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error", body
        assert set(error) == {"message", "type", "param", "code"}
        return error
    assert response["Content-Type"] == PROBLEM
    assert body["code"] == code and body["status"] == status, body
    return body


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("path,template", BODIES.values(), ids=BODIES.keys())
def test_hostile_json_values_are_invalid_json(pg, query_key, path, template, value):
    response = Client().post(
        path, template % value, content_type="application/json", **bearer(query_key)
    )
    assert_refused(response, 400, "invalid_json", path)


def test_the_strict_parser_still_reads_ordinary_json(pg, query_key):
    client = Client()
    # A backslash before "u0000" is text, not a NUL; 1e300 is finite; brackets in strings
    # are text, however many.
    body = (
        '{"query": "owls \\\\u0000 %s and 1e300", "mode": "keyword", '
        '"filter": {"year": {"gte": 1e300}}, "document_ids": [], "k": 5}' % ("[" * 100)
    )
    response = client.post(
        "/api/v1/search", body, content_type="application/json", **bearer(query_key)
    )
    assert response.status_code == 200, response.content
    # 64 levels are JSON the parser reads; the filter's own rules then refuse it (422).
    deep = '{"query": "owls", "mode": "keyword", "filter": {"a": %s}}' % ("[" * 62 + "]" * 62)
    response = client.post(
        "/api/v1/search", deep, content_type="application/json", **bearer(query_key)
    )
    assert_refused(response, 422, "invalid_filter", "/api/v1/search")


@pytest.mark.parametrize(
    "metadata", ['{"a": ' + "[" * 3000 + "]" * 3000 + "}", '{"a": "\\u0000"}', '{"a": 1e400}']
)
def test_json_in_a_query_parameter_follows_the_same_rules(pg, query_key, metadata):
    response = Client().get("/api/v1/documents", {"metadata": metadata}, **bearer(query_key))
    body = assert_refused(response, 400, "invalid_request", "/api/v1/documents")
    assert "metadata" in body["errors"]


def test_250000_document_ids_are_refused_by_their_count_with_one_short_error(pg, query_key):
    client = Client()
    ids = json.dumps(["x"] * 250_000, separators=(",", ":"))
    for path, field in (("/api/v1/search", "query"), ("/api/v1/answer", "question")):
        body = f'{{"{field}": "owls", "document_ids": {ids}}}'
        assert len(body) < 1024 * 1024  # under API_JSON_MAX_BYTES: the field itself refuses
        response = client.post(path, body, content_type="application/json", **bearer(query_key))
        problem = assert_refused(response, 400, "invalid_request", path)
        assert len(response.content) < 2048, len(response.content)
        assert "1000" in json.dumps(problem["errors"]["document_ids"])
    # Under the count, the first bad item is the one error reported.
    few = ["x"] * 10
    response = client.post(
        "/api/v1/search",
        {"query": "owls", "document_ids": [str(uuid.uuid4()), *few]},
        content_type="application/json",
        **bearer(query_key),
    )
    problem = assert_refused(response, 400, "invalid_request", "/api/v1/search")
    assert list(problem["errors"]["document_ids"]) == ["1"]
    assert len(response.content) < 1024


def test_json_bodies_over_the_limit_are_413_before_they_are_read(pg, query_key, settings):
    settings.API_JSON_MAX_BYTES = 1000
    client = Client()
    big = json.dumps({"query": "owls", "pad": "x" * 1000})
    for path in ("/api/v1/search", "/v1/embeddings"):
        response = client.post(path, big, content_type="application/json", **bearer(query_key))
        assert_refused(response, 413, "body_too_large", path)
    # A Content-Length over the limit is refused on its word: not a byte is read.
    response = client.generic(
        "POST",
        "/api/v1/answer",
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH="999999999",
        **bearer(query_key),
    )
    assert_refused(response, 413, "body_too_large", "/api/v1/answer")


def test_json_endpoints_take_json_only(pg, query_key):
    response = Client().post("/api/v1/search", {"query": "owls"}, **bearer(query_key))  # multipart
    assert_refused(response, 415, "unsupported_media_type", "/api/v1/search")


def test_a_body_over_djangos_limit_is_413_problem_json(settings, make_tenant):
    """Django's own limit (RequestDataTooBig, raised while it reads the body) answered an HTML
    400; the document upload, which reads JSON bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE, is
    where the API meets it."""
    from tenants.services.apikeys import apikey_create

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    key = apikey_create(tenant=make_tenant("pool"), scopes=["ingest"])[1]
    response = Client().post(
        "/api/v1/documents",
        {"text": "owls " * 400},
        content_type="application/json",
        **bearer(key),
    )
    assert_refused(response, 413, "body_too_large", "/api/v1/documents")


# --- Over the real server ------------------------------------------------------------------


def http_request(url: str, method: str, path: str, *, body: bytes = b"", headers=None):
    """(status, content type, body) over a fresh connection; the Host header can be forged."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def assert_api_error(status, content_type, body, *, path, want_status, code):
    assert status == want_status, body[:500]
    data = json.loads(body)
    if path.startswith("/v1/"):
        assert content_type == "application/json"
        assert data["error"]["code"] == code and data["error"]["type"] == "invalid_request_error"
    else:
        assert content_type == PROBLEM
        assert data["code"] == code and data["status"] == want_status


@pytest.mark.parametrize("path", ["/api/v1/tenant", "/v1/models"])
def test_a_forged_host_header_is_a_400_in_the_api_shape(web_server, pg, query_key, path):
    headers = {"Host": "evil.example", "Authorization": f"Bearer {query_key}"}
    result = http_request(web_server.url, "GET", path, headers=headers)
    assert_api_error(*result, path=path, want_status=400, code="invalid_host")


@pytest.mark.parametrize("path", ["/api/v1/tenant", "/v1/models"])
def test_too_many_query_fields_are_a_400_in_the_api_shape(web_server, pg, query_key, path):
    query = "&".join(["a"] * 1001)  # DATA_UPLOAD_MAX_NUMBER_FIELDS is 1000
    result = http_request(
        web_server.url, "GET", f"{path}?{query}", headers={"Authorization": f"Bearer {query_key}"}
    )
    assert_api_error(*result, path=path, want_status=400, code="too_many_fields")


@pytest.mark.parametrize("path", ["/api/v1/search", "/v1/embeddings"])
def test_an_oversize_json_body_over_http_is_413_in_the_api_shape(web_server, pg, query_key, path):
    body = json.dumps({"query": "owls", "input": "owls", "pad": "x" * (1024 * 1024)}).encode()
    headers = {"Authorization": f"Bearer {query_key}", "Content-Type": "application/json"}
    result = http_request(web_server.url, "POST", path, body=body, headers=headers)
    assert_api_error(*result, path=path, want_status=413, code="body_too_large")
