"""Token budgets: prompt + generated tokens per model, reserved up front in the tenant's (and
the key's) hour and UTC-day windows, all or none, exact under concurrency; the unused part is
refunded once; a refusal is 429 `token_budget_exhausted` with `Retry-After` until the exhausted
window turns. Also the surfaces: quotas, `tenant_quota`, `apikey_create`, the keys and usage
APIs."""

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connections

from tenants.models import ApiKey, TokenCounter
from tenants.services.apikeys import apikey_create
from tenants.services.quotas import QuotaExceeded, quota_clock, quota_get, quota_set
from tenants.services.token_budgets import token_budget_reserve, token_budget_usage
from tests.helpers import bearer

MODEL = "test-model"


def counters(tenant, api_key=None, model=MODEL) -> dict[str, int]:
    rows = TokenCounter.objects.filter(tenant=tenant, api_key=api_key, model=model)
    return {row.period: row.tokens for row in rows}


def reserve(tenant, tokens, api_key=None, model=MODEL):
    return token_budget_reserve(tenant=tenant, api_key=api_key, model=model, tokens=tokens)


def refusal(tenant, tokens, api_key=None) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as refused:
        reserve(tenant, tokens, api_key)
    assert (refused.value.status, refused.value.code) == (429, "token_budget_exhausted")
    return refused.value


def test_reserve_refund_arithmetic_and_all_or_none(mid_hour, make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, tokens_per_hour=100, tokens_per_day=1000)

    first = reserve(tenant, 30)
    assert counters(tenant) == {"hour": 30, "day": 30}
    assert first.refund(12) == 18
    assert counters(tenant) == {"hour": 12, "day": 12}
    assert first.refund(0) == 0  # idempotent: the second refund gives nothing back
    assert counters(tenant) == {"hour": 12, "day": 12}
    # Using more than was reserved refunds nothing (and never takes more).
    assert reserve(tenant, 10).refund(50) == 0
    assert counters(tenant) == {"hour": 22, "day": 22}
    with pytest.raises(ValueError, match="non-negative"):
        first.refund(-1)
    with pytest.raises(ValueError, match="positive integer"):
        reserve(tenant, 0)

    # 79 more would make 101 in the hour: refused, and the day window (which had room) is not
    # touched either.
    exc = refusal(tenant, 79)
    assert counters(tenant) == {"hour": 22, "day": 22}
    assert exc.headers["Retry-After"] == "1800" and exc.extra["retry_after"] == 1800
    assert exc.headers["x-should-retry"] == "false" and exc.extra["retryable"] is False
    assert exc.headers["RateLimit-Policy"] == '"tokens-hour";q=100;w=3600'
    assert exc.headers["RateLimit"] == '"tokens-hour";r=78;t=1800'
    assert exc.extra["budget"] == {
        "scope": "tenant",
        "period": "hour",
        "model": MODEL,
        "limit": 100,
        "remaining": 78,
        "requested": 79,
    }
    assert "78 left" in exc.detail and "1800 s" in exc.detail
    # Exactly what is left still fits.
    reserve(tenant, 78)
    assert counters(tenant) == {"hour": 100, "day": 100}
    # More than the whole budget is refused with a detail that says so.
    assert "more than the tenant's budget of 100" in refusal(tenant, 101).detail
    # Budgets are per model: another model has its own windows.
    reserve(tenant, 100, model="other-model")
    assert counters(tenant, model="other-model") == {"hour": 100, "day": 100}


def test_the_window_turns_admit_again_and_retry_after_says_when(make_tenant):
    tenant = make_tenant("bridge")
    quota_set(tenant=tenant, tokens_per_hour=40, tokens_per_day=60)
    # A fixed time of day, so the next hour is still the same UTC day.
    morning = datetime.now(UTC).replace(hour=10, minute=30, second=0, microsecond=0)
    with quota_clock(morning):
        reserve(tenant, 40)
        assert refusal(tenant, 1).headers["Retry-After"] == "1800"  # the hour turns at 11:00

    next_hour = morning + timedelta(hours=1)
    with quota_clock(next_hour):
        reserve(tenant, 20)  # a new hour: admitted, the day now holds 60
        day = refusal(tenant, 1)
    # The day is exhausted: retryable only when the UTC day turns, not the hour.
    midnight = (next_hour + timedelta(days=1)).replace(hour=0, minute=0)
    assert day.headers["Retry-After"] == str(int((midnight - next_hour).total_seconds()))
    assert day.extra["budget"]["period"] == "day"
    assert day.headers["RateLimit-Policy"] == '"tokens-day";q=60;w=86400'

    with quota_clock(midnight + timedelta(minutes=5)):
        reserve(tenant, 25)
    # Old windows were pruned when the new ones opened: one row per period remains.
    assert counters(tenant) == {"hour": 25, "day": 25}
    assert TokenCounter.objects.filter(tenant=tenant).count() == 2


def test_a_key_budget_tighter_than_the_tenants(mid_hour, make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, tokens_per_hour=1000, tokens_per_day=5000)
    tight, _ = apikey_create(tenant=tenant, scopes=["query"], tokens_per_hour=20)
    loose, _ = apikey_create(tenant=tenant, scopes=["query"])

    reserve(tenant, 15, tight)
    assert counters(tenant, tight) == {"hour": 15}  # the key has no daily budget of its own
    exc = refusal(tenant, 10, tight)
    assert exc.extra["budget"]["scope"] == "api_key" and exc.extra["budget"]["remaining"] == 5
    assert exc.headers["RateLimit-Policy"] == '"key-tokens-hour";q=20;w=3600'
    assert "API key's budget of 20" in exc.detail
    # The tenant's windows, taken first in the same transaction, were rolled back.
    assert counters(tenant) == {"hour": 15, "day": 15}
    # Another key of the tenant (no budget of its own) still has the tenant's room.
    reserve(tenant, 500, loose)
    assert counters(tenant) == {"hour": 515, "day": 515}
    assert counters(tenant, loose) == {}
    # The tenant's own budget binds the tight key too.
    quota_set(tenant=tenant, tokens_per_hour=517)
    assert refusal(tenant, 3, tight).extra["budget"]["scope"] == "tenant"


THREADS = 40


def test_concurrent_reservations_never_exceed_the_budget_and_refunds_are_exact(
    mid_hour, make_tenant
):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, tokens_per_hour=100, tokens_per_day=10_000)
    key, _ = apikey_create(tenant=tenant, scopes=["query"], tokens_per_hour=63, tokens_per_day=70)
    start = threading.Barrier(THREADS)

    def take(n):
        # Half the threads through the key (its budget binds first), half tenant-wide.
        start.wait()
        try:
            return reserve(tenant, 7, key if n % 2 else None)
        except QuotaExceeded as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(take, range(THREADS)))
    taken = [o for o in outcomes if not isinstance(o, QuotaExceeded)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    # 100 // 7 = 14 reservations fit the tenant's hour, and at most 63 // 7 = 9 of them the key's.
    assert len(taken) == 14 and len(refused) == THREADS - 14
    through_key = [r for r in taken if any(b.api_key_id for b, _ in r.windows)]
    assert len(through_key) <= 9
    assert counters(tenant) == {"hour": 98, "day": 98}
    assert counters(tenant, key) == {"hour": 7 * len(through_key), "day": 7 * len(through_key)}

    # Refunds at the same time as new reservations: every refund lands exactly.
    used = {id(r): n % 8 for n, r in enumerate(taken)}
    more = threading.Barrier(len(taken) * 2)

    def settle(r):
        more.wait()
        try:
            return r.refund(used[id(r)])
        finally:
            connections.close_all()

    def take_again(_):
        more.wait()
        try:
            return reserve(tenant, 5)
        except QuotaExceeded as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(taken) * 2) as pool:
        refunds = [pool.submit(settle, r) for r in taken]
        again = [pool.submit(take_again, n) for n in range(len(taken))]
        [f.result() for f in refunds]
        extra = [f.result() for f in again if not isinstance(f.result(), QuotaExceeded)]
    spent = sum(used.values()) + 5 * len(extra)
    assert counters(tenant)["hour"] == spent <= 100
    assert counters(tenant, key)["hour"] == sum(used[id(r)] for r in through_key)
    assert all(r.refund(0) == 0 for r in taken)  # a second refund changes nothing


def test_quota_fields_defaults_and_validation(make_tenant, settings):
    settings.QUOTA_DEFAULTS = {**settings.QUOTA_DEFAULTS, "tokens_per_day": 4321}
    tenant = make_tenant("pool")
    assert quota_get(tenant=tenant).tokens_per_day == 4321
    assert quota_get(tenant=tenant).tokens_per_hour == settings.QUOTA_DEFAULTS["tokens_per_hour"]
    assert quota_set(tenant=tenant, tokens_per_hour=2**40).tokens_per_hour == 2**40
    for bad in (0, -5, "lots", 1.5):
        with pytest.raises(ValueError, match="tokens_per_day must be a positive integer"):
            quota_set(tenant=tenant, tokens_per_day=bad)


def test_tenant_quota_command_shows_and_sets_token_budgets(make_tenant):
    tenant = make_tenant("pool")
    out = io.StringIO()
    call_command(
        "tenant_quota", tenant.slug, "--set", "tokens_per_hour=5000", "tokens_per_day=9000",
        stdout=out,
    )  # fmt: skip
    lines = dict(line.split() for line in out.getvalue().splitlines()[1:])
    assert (lines["tokens_per_hour"], lines["tokens_per_day"]) == ("5000", "9000")
    assert quota_get(tenant=tenant).tokens_per_day == 9000


def test_apikey_create_command_sets_key_budgets(make_tenant):
    tenant = make_tenant("pool")
    out = io.StringIO()
    call_command(
        "apikey_create", tenant.slug, "--scopes", "query",
        "--tokens-per-hour", "300", "--tokens-per-day", "2000", stdout=out,
    )  # fmt: skip
    raw = out.getvalue().splitlines()[-1]
    key = ApiKey.objects.get(prefix=raw[:16])
    assert (key.tokens_per_hour, key.tokens_per_day) == (300, 2000)
    assert "300 tokens per hour, 2000 tokens per day" in out.getvalue()
    with pytest.raises(Exception, match="tokens_per_hour must be a positive integer"):
        call_command("apikey_create", tenant.slug, "--scopes", "query", "--tokens-per-hour", "0")


def test_keys_api_sets_key_budgets_and_usage_api_shows_tokens_per_model(
    mid_hour, make_tenant, make_key, api
):
    tenant = make_tenant("silo")
    quota_set(tenant=tenant, tokens_per_hour=700, tokens_per_day=900)
    admin = make_key(tenant, scopes=["admin"])
    created = api.post(
        "/api/v1/keys",
        {"scopes": ["query"], "tokens_per_hour": 50, "tokens_per_day": None},
        format="json",
        **bearer(admin),
    )
    assert created.status_code == 201, created.content
    assert (created.json()["tokens_per_hour"], created.json()["tokens_per_day"]) == (50, None)
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert (key.tokens_per_hour, key.tokens_per_day) == (50, None)
    listed = api.get("/api/v1/keys", **bearer(admin)).json()
    assert {k["id"]: k["tokens_per_hour"] for k in listed}[str(key.pk)] == 50
    bad = api.post(
        "/api/v1/keys", {"scopes": ["query"], "tokens_per_hour": 0}, format="json", **bearer(admin)
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"

    reserve(tenant, 40, key)
    budgets = api.get("/api/v1/usage", **bearer(admin)).json()["token_budgets"]
    assert (budgets["tokens_per_hour"], budgets["tokens_per_day"]) == (700, 900)
    [row] = budgets["models"]
    assert row["model"] == MODEL
    assert (row["hour"]["used"], row["hour"]["limit"], row["hour"]["remaining"]) == (40, 700, 660)
    assert (row["day"]["used"], row["day"]["limit"], row["day"]["remaining"]) == (40, 900, 860)
    assert row["hour"]["reset"].startswith(
        (mid_hour + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:00")
    )
    # The key's own view of its windows.
    mine = token_budget_usage(tenant=tenant, api_key=key)
    assert mine["tokens_per_hour"] == 50 and mine["tokens_per_day"] is None
    assert mine["models"][0]["hour"]["remaining"] == 10
    # No daily budget of its own: nothing is counted there for it.
    assert (mine["models"][0]["day"]["used"], mine["models"][0]["day"]["remaining"]) == (0, None)
