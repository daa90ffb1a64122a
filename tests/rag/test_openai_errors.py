"""Every error under /v1/ takes OpenAI's shape (`{"error": {"message", "type", "param",
"code"}}`), so OpenAI clients raise their usual exceptions: auth, validation, quotas, unknown
paths and methods, and the last resort, an unexpected exception (500 `server_error`).

Embeddings are metered by input: a batch of 256 inputs cost 13 s of CPU but counted as one
request, so each input now counts as one request against `embeddings_per_hour`, the batch
admitted whole or refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client, RequestFactory

from tenants.models import RequestCounter, UsageRecord
from tenants.services.quotas import quota_admit, quota_clock, quota_set
from tests.helpers import bearer


def openai_error(response, status: int, error_type: str, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["type"], error["code"]) == (error_type, code), error
    assert error["message"]
    return error


def post(path: str, body: dict, key: str | None = None, client: Client | None = None):
    headers = bearer(key) if key else {}
    return (client or Client()).post(
        path, json.dumps(body), content_type="application/json", **headers
    )


@pytest.fixture
def mid_hour():
    """Requests of this process count in one quota window, however long the test runs."""
    with quota_clock(datetime.now(UTC).replace(minute=30, second=0, microsecond=0)):
        yield


def test_authentication_and_scope_errors(make_tenant, make_key):
    tenant = make_tenant("pool")
    ingest_only = make_key(tenant, scopes=["ingest"])
    body = {"model": "all-MiniLM-L6-v2", "input": "owls"}
    openai_error(post("/v1/embeddings", body), 401, "authentication_error", "not_authenticated")
    openai_error(
        post("/v1/embeddings", body, "tnt_000000000000_not-a-real-key"),
        401,
        "authentication_error",
        "invalid_api_key",
    )
    openai_error(
        post("/v1/embeddings", body, ingest_only), 403, "permission_error", "insufficient_scope"
    )


def test_validation_errors_name_the_param(make_tenant, make_key):
    key = make_key(make_tenant("pool"), scopes=["query"])
    chat = post("/v1/chat/completions", {"model": "m", "messages": []}, key)
    assert openai_error(chat, 400, "invalid_request_error", "invalid_request")["param"] == (
        "messages"
    )
    dims = post("/v1/embeddings", {"input": "owls", "dimensions": 10}, key)
    error = openai_error(dims, 400, "invalid_request_error", "invalid_dimensions")
    assert error["param"] == "dimensions"
    malformed = Client().post(
        "/v1/embeddings", '{"input": ', content_type="application/json", **bearer(key)
    )
    openai_error(malformed, 400, "invalid_request_error", "invalid_json")


def test_unknown_models_paths_and_methods(make_tenant, make_key):
    key = make_key(make_tenant("pool"), scopes=["query"])
    client = Client()
    # `client.models.retrieve("gpt-4")` asks this path; only the listing exists.
    missing = client.get("/v1/models/gpt-4", **bearer(key))
    openai_error(missing, 404, "not_found_error", "not_found")
    openai_error(post("/v1/responses", {"model": "m"}, key), 404, "not_found_error", "not_found")
    wrong = client.get("/v1/embeddings", **bearer(key))
    openai_error(wrong, 405, "invalid_request_error", "method_not_allowed")


def test_chat_over_the_answer_quota_is_a_rate_limit_error(mid_hour, make_tenant, make_key):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, answer_per_hour=1)
    quota_admit(tenant=tenant, kind="answer")  # the hour's one answer is taken
    key = make_key(tenant, scopes=["query"])
    body = {"messages": [{"role": "user", "content": "What do owls eat?"}]}
    refused = post("/v1/chat/completions", body, key)
    openai_error(refused, 429, "rate_limit_error", "rate_limited")
    assert int(refused["Retry-After"]) >= 1


def test_embeddings_count_each_input_and_a_batch_is_admitted_whole(mid_hour, make_tenant, make_key):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, embeddings_per_hour=10)
    key = make_key(tenant, scopes=["query"])
    batch = {"model": "all-MiniLM-L6-v2", "input": [f"owl number {i}" for i in range(8)]}

    first = post("/v1/embeddings", batch, key)
    assert first.status_code == 200, first.content
    assert len(first.json()["data"]) == 8
    assert first["RateLimit"].startswith('"embeddings";r=2;')

    second = post("/v1/embeddings", batch, key)
    error = openai_error(second, 429, "rate_limit_error", "rate_limited")
    assert "8" in error["message"] and "2" in error["message"]
    assert int(second["Retry-After"]) >= 1
    assert second["RateLimit"].startswith('"embeddings";r=2;')  # the refusal took nothing

    counter = RequestCounter.objects.get(tenant=tenant, kind="embeddings")
    ledger = UsageRecord.objects.filter(tenant=tenant, kind="embeddings")
    assert counter.count == 8
    assert sum(r.requests for r in ledger) == 8
    assert sum(r.embedding_tokens for r in ledger) == first.json()["usage"]["total_tokens"] > 8

    # What is left is still usable: two inputs fit exactly.
    rest = post("/v1/embeddings", {"input": ["owls", "more owls"]}, key)
    assert rest.status_code == 200 and rest["RateLimit"].startswith('"embeddings";r=0;')


def test_an_unexpected_exception_is_a_500_in_each_apis_shape(make_tenant, make_key, settings):
    """A setting of the wrong type stands in for a bug: the parser fails with a TypeError that
    nothing expects, and Django's last-resort handler answers in the API's shape."""
    key = make_key(make_tenant("pool"), scopes=["query"])
    settings.API_JSON_MAX_BYTES = "one mebibyte"
    client = Client(raise_request_exception=False)
    failed = post("/v1/embeddings", {"input": "owls"}, key, client=client)
    error = openai_error(failed, 500, "server_error", "server_error")
    assert "TypeError" not in error["message"]  # nothing of the failure leaks
    problem = post("/api/v1/search", {"query": "owls"}, key, client=client)
    assert problem.status_code == 500 and problem["Content-Type"] == "application/problem+json"
    assert problem.json()["code"] == "server_error"


def test_the_500_handler_answers_openai_paths_in_openai_shape():
    from config.urls import handler500

    for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models"):
        response = handler500(RequestFactory().post(path))
        body = json.loads(response.content)
        assert response.status_code == 500 and response["Content-Type"] == "application/json"
        assert body["error"]["type"] == "server_error" and body["error"]["code"] == "server_error"
    page = handler500(RequestFactory().get("/console/"))
    assert page["Content-Type"].startswith("text/html")
