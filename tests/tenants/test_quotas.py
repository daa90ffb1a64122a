"""Hourly request limits: exactly the limit is admitted under concurrency, over real HTTP and at
the service; the rest get 429 `rate_limited` with `Retry-After` and the RateLimit headers."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from tenants.models import RequestCounter, TenantQuota, UsageRecord
from tenants.services.quotas import (
    QuotaExceeded,
    quota_admit,
    quota_get,
    quota_max_tokens,
    quota_set,
)
from tests.helpers import bearer

CONCURRENT = 50
LIMIT = 20


def http_post(url: str, key: str, body: dict):
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def _database_hour():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT date_trunc('hour', now(), 'UTC')")
        return cursor.fetchone()[0]


def _search_burst(url: str, key: str) -> list:
    start = threading.Barrier(CONCURRENT)

    def search(_):
        start.wait()
        return http_post(f"{url}/api/v1/search", key, {"query": "owls", "mode": "keyword"})

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        return list(pool.map(search, range(CONCURRENT)))


def test_50_concurrent_searches_over_http_admit_exactly_20(web_server, make_tenant, make_key):
    # The web server is another process, on the database's clock (the pinned quota clock is
    # this process's): a burst that straddles an hour boundary counts in two windows, so it is
    # run again, for a fresh tenant, in the new hour. No sleeping to dodge the boundary.
    for _ in range(2):
        tenant = make_tenant("pool")
        quota_set(tenant=tenant, search_per_hour=LIMIT)
        key = make_key(tenant, scopes=["query"])
        hour = _database_hour()
        results = _search_burst(web_server.url, key)
        if _database_hour() == hour:
            break

    admitted = [(headers, body) for status, headers, body in results if status == 200]
    refused = [(headers, body) for status, headers, body in results if status == 429]
    assert len(admitted) == LIMIT and len(refused) == CONCURRENT - LIMIT, [r[0] for r in results]
    for headers, body in refused:
        assert headers["Content-Type"] == "application/problem+json"
        assert body["code"] == "rate_limited" and body["status"] == 429
        assert 1 <= int(headers["Retry-After"]) <= 3600
        assert headers["RateLimit-Policy"] == f'"search";q={LIMIT};w=3600'
        assert headers["RateLimit"].startswith('"search";r=0;t=')
    # Each admitted request took its own place: remaining counts 19, 18, ... 0, once each.
    remaining = sorted(int(h["RateLimit"].split(";r=")[1].split(";")[0]) for h, _ in admitted)
    assert remaining == list(range(LIMIT))
    assert all(body["results"] == [] for _, body in admitted)
    assert RequestCounter.objects.get(tenant=tenant, kind="search").count == LIMIT
    ledger = UsageRecord.objects.filter(tenant=tenant, kind="search")
    assert sum(r.requests for r in ledger) == LIMIT


def test_quota_admit_from_50_threads_admits_exactly_the_limit(mid_hour, make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, answer_per_hour=LIMIT)
    start = threading.Barrier(CONCURRENT)

    def admit(_):
        start.wait()
        try:
            return quota_admit(tenant=tenant, kind="answer")
        except QuotaExceeded as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        outcomes = list(pool.map(admit, range(CONCURRENT)))

    refusals = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(outcomes) - len(refusals) == LIMIT and len(refusals) == CONCURRENT - LIMIT
    for exc in refusals:
        assert (exc.status, exc.code) == (429, "rate_limited")
        assert int(exc.headers["Retry-After"]) >= 1
        assert exc.headers["RateLimit-Policy"] == f'"answer";q={LIMIT};w=3600'
    assert RequestCounter.objects.get(tenant=tenant, kind="answer").count == LIMIT


def test_limits_are_per_tenant_and_per_kind(mid_hour, make_tenant, settings):
    a, b = make_tenant("pool"), make_tenant("bridge")
    quota_set(tenant=a, ingest_per_hour=2)
    quota_set(tenant=b, ingest_per_hour=2)
    first = quota_admit(tenant=a, kind="ingest")
    assert first["RateLimit"].startswith('"ingest";r=1;t=')
    quota_admit(tenant=a, kind="ingest")
    with pytest.raises(QuotaExceeded) as refused:
        quota_admit(tenant=a, kind="ingest")
    assert refused.value.headers["RateLimit"].startswith('"ingest";r=0;')
    # Other kinds of the same tenant, and the same kind of another tenant, are untouched.
    searches = settings.QUOTA_DEFAULTS["search_per_hour"]
    assert quota_admit(tenant=a, kind="search")["RateLimit"].startswith(
        f'"search";r={searches - 1};'
    )
    assert quota_admit(tenant=b, kind="ingest")["RateLimit"].startswith('"ingest";r=1;')
    # Raising the limit admits again within the same hour.
    quota_set(tenant=a, ingest_per_hour=3)
    assert quota_admit(tenant=a, kind="ingest")["RateLimit"].startswith('"ingest";r=0;')
    with pytest.raises(ValueError, match="Unknown request kind"):
        quota_admit(tenant=a, kind="chat")


def test_rate_limit_headers_on_success_and_429_through_the_api(
    mid_hour, make_tenant, make_key, api
):
    tenant = make_tenant("silo")
    quota_set(tenant=tenant, search_per_hour=1)
    key = make_key(tenant, scopes=["query"])
    body = {"query": "anything", "mode": "keyword"}
    ok = api.post("/api/v1/search", body, format="json", **bearer(key))
    assert ok.status_code == 200
    assert ok["RateLimit-Policy"] == '"search";q=1;w=3600'
    assert ok["RateLimit"].startswith('"search";r=0;t=')
    refused = api.post("/api/v1/search", body, format="json", **bearer(key))
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1 and "RateLimit" in refused


def test_quotas_are_created_with_the_configured_defaults(make_tenant, settings):
    settings.QUOTA_DEFAULTS = {**settings.QUOTA_DEFAULTS, "max_tokens_per_response": 333}
    tenant = make_tenant("pool")
    assert not TenantQuota.objects.filter(tenant=tenant).exists()
    assert quota_max_tokens(tenant=tenant) == 333
    quota = quota_get(tenant=tenant)
    assert quota.max_concurrent_generations == settings.QUOTA_DEFAULTS["max_concurrent_generations"]
    assert TenantQuota.objects.filter(tenant=tenant).count() == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"search_per_minute": 5}, "Unknown quota 'search_per_minute'"),
        ({"search_per_hour": 0}, "search_per_hour must be a positive integer"),
        ({"max_documents": -3}, "max_documents must be a positive integer"),
        ({"max_documents": "many"}, "max_documents must be a positive integer"),
        ({"max_documents": 1.5}, "max_documents must be a positive integer"),
        ({"answer_per_hour": 2**31}, "answer_per_hour must be a positive integer"),
    ],
)
def test_quota_set_refuses_unknown_names_and_bad_values(make_tenant, values, message):
    tenant = make_tenant("pool")
    before = quota_get(tenant=tenant)
    with pytest.raises(ValueError, match=message):
        quota_set(tenant=tenant, max_tokens_per_response=7, **values)
    # Nothing was changed, not even the valid value given alongside.
    after = TenantQuota.objects.get(tenant=tenant)
    assert after.max_tokens_per_response == before.max_tokens_per_response != 7
    with pytest.raises(ValueError, match="Name at least one quota"):
        quota_set(tenant=tenant)


def test_quota_set_changes_only_the_named_quotas(make_tenant, settings):
    tenant = make_tenant("pool")
    quota = quota_set(tenant=tenant, max_storage_bytes=str(5 * 2**40), max_tokens_per_response=64)
    assert (quota.max_storage_bytes, quota.max_tokens_per_response) == (5 * 2**40, 64)
    stored = TenantQuota.objects.get(tenant=tenant)
    assert stored.max_storage_bytes == 5 * 2**40 and stored.max_tokens_per_response == 64
    assert stored.search_per_hour == settings.QUOTA_DEFAULTS["search_per_hour"]
