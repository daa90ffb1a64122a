"""The usage ledger and `GET /api/v1/usage`: what a tenant used, per key and per hour, against
its quotas; never another tenant's usage, in every isolation mode."""

from datetime import datetime, timedelta

import pytest
from django.utils.dateparse import parse_datetime

from rag.tokenizer import count_tokens
from tenants.models import ApiKey, UsageRecord
from tenants.services.quotas import generation_slot, quota_set
from tenants.services.usage import usage_record, usage_series, usage_summary
from tests.helpers import MODES, bearer


def search(api, key: str, query: str, mode: str = "keyword"):
    response = api.post(
        "/api/v1/search", {"query": query, "mode": mode}, format="json", **bearer(key)
    )
    assert response.status_code == 200, response.content
    return response


def ingest(api, key: str, text: str):
    response = api.post("/api/v1/documents", {"text": text}, format="json", **bearer(key))
    assert response.status_code == 202, response.content
    return response


@pytest.mark.parametrize("mode", MODES)
def test_usage_shows_the_callers_requests_and_never_another_tenants(
    mid_hour, mode, make_tenant, make_key, api, settings
):
    a, b = make_tenant(mode), make_tenant(mode)
    quota_set(tenant=a, search_per_hour=10, max_documents=50, max_storage_bytes=10_000)
    a_key, b_key = make_key(a), make_key(b)
    search(api, a_key, "tides")
    search(api, a_key, "moon")
    text = "The moon raises the tides twice a day."
    ingest(api, a_key, text)

    response = api.get("/api/v1/usage", **bearer(a_key))
    assert response.status_code == 200
    usage = response.json()
    assert usage["tenant"] == a.slug
    assert usage["requests"]["search"] | {"reset": None} == {
        "used": 2,
        "limit": 10,
        "remaining": 8,
        "reset": None,
    }
    assert usage["requests"]["ingest"]["used"] == 1
    assert usage["requests"]["answer"]["used"] == usage["requests"]["embeddings"]["used"] == 0
    reset = parse_datetime(usage["requests"]["search"]["reset"])
    as_of = parse_datetime(usage["as_of"])
    assert timedelta(0) < reset - as_of <= timedelta(hours=1)
    assert (reset.minute, reset.second) == (0, 0)
    assert usage["last_24h"]["requests"] == 3
    assert usage["documents"] == {"used": 1, "limit": 50}
    assert usage["storage_bytes"] == {"used": len(text), "limit": 10_000}
    assert usage["concurrent_generations"]["running"] == 0
    assert usage["max_tokens_per_response"] == settings.QUOTA_DEFAULTS["max_tokens_per_response"]

    other = api.get("/api/v1/usage", **bearer(b_key)).json()
    assert other["tenant"] == b.slug
    assert all(other["requests"][kind]["used"] == 0 for kind in other["requests"])
    assert other["last_24h"]["requests"] == 0
    assert other["documents"]["used"] == 0 and other["storage_bytes"]["used"] == 0
    assert not UsageRecord.objects.filter(tenant=b).exists()


def test_the_ledger_keeps_one_row_per_key_hour_and_kind(mid_hour, make_tenant, make_key, api):
    tenant = make_tenant("pool")
    first, second = make_key(tenant), make_key(tenant, scopes=["query"])
    search(api, first, "one")
    search(api, first, "two")
    search(api, second, "three")
    ingest(api, first, "A document for the ledger.")
    usage_record(tenant=tenant, kind="search")  # no key: e.g. a management command
    usage_record(tenant=tenant, kind="search")

    rows = {
        (ApiKey.objects.get(pk=r.api_key_id).prefix if r.api_key_id else None, r.kind): r
        for r in UsageRecord.objects.filter(tenant=tenant)
    }
    assert {k: r.requests for k, r in rows.items()} == {
        (first[:16], "search"): 2,
        (first[:16], "ingest"): 1,
        (second[:16], "search"): 1,
        (None, "search"): 2,
    }
    assert len({r.hour for r in rows.values()}) == 1
    hour = next(iter(rows.values())).hour
    assert (hour.minute, hour.second, hour.microsecond) == (0, 0, 0)


def test_usage_record_adds_tokens_and_time(mid_hour, make_tenant, make_key):
    tenant = make_tenant("pool")
    usage_record(
        tenant=tenant, kind="answer", prompt_tokens=100, completion_tokens=20, generation_ms=900
    )
    usage_record(
        tenant=tenant, kind="answer", prompt_tokens=50, completion_tokens=5, generation_ms=100
    )
    usage_record(tenant=tenant, kind="embeddings", embedding_tokens=7)
    (answer,) = UsageRecord.objects.filter(tenant=tenant, kind="answer")
    assert (answer.requests, answer.prompt_tokens, answer.completion_tokens) == (2, 150, 25)
    assert answer.generation_ms == 1000
    summary = usage_summary(tenant=tenant)
    assert summary["last_24h"] == {
        "requests": 3,
        "prompt_tokens": 150,
        "completion_tokens": 25,
        "embedding_tokens": 7,
        "generation_ms": 1000,
    }
    series = usage_series(tenant=tenant, hours=24)
    assert [(row["kind"], row["requests"]) for row in series] == [("answer", 2), ("embeddings", 1)]
    assert isinstance(series[0]["hour"], datetime)
    with pytest.raises(ValueError, match="Unknown request kind"):
        usage_record(tenant=tenant, kind="chat")
    with pytest.raises(ValueError, match="prompt_tokens must be a non-negative integer"):
        usage_record(tenant=tenant, kind="answer", prompt_tokens=-1)


def test_usage_series_leaves_out_hours_before_the_range(mid_hour, make_tenant):
    tenant = make_tenant("pool")
    usage_record(tenant=tenant, kind="search")
    now_hour = UsageRecord.objects.get(tenant=tenant).hour
    UsageRecord.objects.create(tenant=tenant, kind="search", hour=now_hour - timedelta(hours=5))
    UsageRecord.objects.filter(tenant=tenant, hour__lt=now_hour).update(requests=4)
    assert [row["requests"] for row in usage_series(tenant=tenant, hours=6)] == [4, 1]
    assert [row["requests"] for row in usage_series(tenant=tenant, hours=5)] == [1]
    assert usage_summary(tenant=tenant)["last_24h"]["requests"] == 5


def test_vector_search_records_the_query_embedding_tokens(make_tenant, make_key, api):
    tenant = make_tenant("pool")
    key = make_key(tenant, scopes=["query"])
    query = "How do bees tell the hive where the flowers are?"
    search(api, key, query, mode="vector")
    search(api, key, "keyword search embeds nothing", mode="keyword")
    (row,) = UsageRecord.objects.filter(tenant=tenant, kind="search")
    assert row.requests == 2
    assert row.embedding_tokens == count_tokens(query) > 0


def test_usage_needs_a_key_of_any_scope_and_shows_running_generations(make_tenant, make_key, api):
    tenant = make_tenant("silo")
    quota_set(tenant=tenant, max_concurrent_generations=3, max_tokens_per_response=256)
    assert api.get("/api/v1/usage").status_code == 401
    key = make_key(tenant, scopes=["ingest"])
    with generation_slot(tenant=tenant):
        usage = api.get("/api/v1/usage", **bearer(key)).json()
    assert usage["concurrent_generations"] == {"running": 1, "limit": 3}
    assert usage["max_tokens_per_response"] == 256
