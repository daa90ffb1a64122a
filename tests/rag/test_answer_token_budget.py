"""Token budgets through the answer API, its stream and the OpenAI SDK: an answer reserves its
prompt plus max_tokens before it takes a generation slot, is refused 429
`token_budget_exhausted` (no generation, nothing left reserved) when that does not fit, and
leaves exactly the tokens it used once it ends. Answers that use no model reserve nothing."""

import openai
import pytest

from tenants.models import RequestCounter, TokenCounter, UsageRecord
from tenants.services.apikeys import apikey_create
from tenants.services.quotas import generation_slot, generations_running, quota_set
from tenants.services.token_budgets import token_budget_reserve
from tests.helpers import bearer
from tests.tenants.clock import mid_hour  # noqa: F401 - fixture

ZOO = (
    "# Lakeside zoo handbook\n\n## Zebras\n\nThe zebras at Lakeside zoo eat fresh meadow hay "
    "twice a day.\n\n## Penguins\n\nThe penguins are fed herring every morning."
)
QUESTION = "What do the zebras at Lakeside zoo eat?"


@pytest.fixture
def zoo(make_tenant, make_key, upload, wait_done, worker):
    """A pool tenant with the zoo handbook ingested; returns (tenant, admin key)."""
    tenant = make_tenant("pool")
    key = make_key(tenant)
    document_id = upload(key, text=ZOO, title="Zoo handbook").json()["id"]
    assert wait_done(key, document_id)["status"] == "ready"
    return tenant, key


def ask(api, key, **body):
    body = {"question": QUESTION, "max_tokens": 8, **body}
    return api.post("/api/v1/answer", body, format="json", **bearer(key))


def held(tenant, **filters) -> dict[tuple, int]:
    rows = TokenCounter.objects.filter(tenant=tenant, **filters)
    return {(row.api_key_id, row.period): row.tokens for row in rows}


def answer_tokens_metered(tenant) -> int:
    rows = UsageRecord.objects.filter(tenant=tenant, kind="answer")
    return sum(r.prompt_tokens + r.completion_tokens for r in rows)


@pytest.mark.usefixtures("mid_hour")
def test_over_budget_is_429_before_any_generation_and_holds_nothing(
    api, zoo, make_tenant, make_key
):
    tenant, key = zoo
    quota_set(tenant=tenant, tokens_per_hour=20)  # less than any grounded prompt
    too_big = ask(api, key)
    assert too_big.status_code == 429 and too_big.json()["code"] == "token_budget_exhausted"
    assert "more than the tenant's budget of 20 per hour" in too_big.json()["detail"]
    model = too_big.json()["budget"]["model"]

    # A budget nearly spent: 100 tokens left, fewer than the prompt plus max_tokens.
    quota_set(tenant=tenant, tokens_per_hour=1000)
    token_budget_reserve(tenant=tenant, api_key=None, model=model, tokens=900)
    for stream in (False, True):
        refused = ask(api, key, stream=stream)
        assert refused.status_code == 429, refused.content
        assert refused["Content-Type"] == "application/problem+json"
        body = refused.json()
        assert body["code"] == "token_budget_exhausted" != "rate_limited"
        assert refused["Retry-After"] == "1800" and body["retry_after"] == 1800
        assert body["retryable"] is False
        assert "Not retryable until the window turns, in 1800 s" in body["detail"]
        assert body["budget"]["scope"] == "tenant" and body["budget"]["period"] == "hour"
        assert body["budget"]["remaining"] == 100 < body["budget"]["requested"]
        assert refused["RateLimit-Policy"] == '"tokens-hour";q=1000;w=3600'
        assert refused["RateLimit"] == '"tokens-hour";r=100;t=1800'
    # No generation ran, none was metered, nothing more is reserved and no slot is held.
    assert answer_tokens_metered(tenant) == 0
    assert held(tenant) == {(None, "hour"): 900, (None, "day"): 900}
    assert generations_running(tenant=tenant) == 0

    # An answer without sources uses no model, so no budget: still answered.
    empty = make_tenant("pool")
    quota_set(tenant=empty, tokens_per_hour=1)
    answered = ask(api, make_key(empty))
    assert answered.status_code == 200 and answered.json()["citations"] == []
    assert held(empty) == {}


def test_the_counters_hold_exactly_the_tokens_used_and_cached_replays_are_free(api, zoo):
    tenant, _ = zoo
    budgeted, raw = apikey_create(
        tenant=tenant, scopes=["query"], tokens_per_hour=5000, tokens_per_day=9000
    )
    first = ask(api, raw, temperature=0)
    assert first.status_code == 200, first.content
    used = first.json()["usage"]["total_tokens"]
    model = first.json()["model"]
    # Reserved: prompt + 8; kept: prompt + completion. Tenant and key windows alike.
    expected = {(None, "hour"): used, (None, "day"): used}
    expected |= {(budgeted.pk, "hour"): used, (budgeted.pk, "day"): used}
    assert held(tenant, model=model) == expected

    streamed = ask(api, raw, stream=True, cache=False)
    assert streamed.status_code == 200
    b"".join(streamed.streaming_content)  # the stream ends: the session closes and refunds
    total = answer_tokens_metered(tenant)
    assert total > used
    assert held(tenant, model=model) == dict.fromkeys(expected, total)

    # The deterministic answer again, from the cache: no model, so no budget is needed.
    quota_set(tenant=tenant, tokens_per_hour=1)
    replay = ask(api, raw, temperature=0)
    assert replay.status_code == 200 and replay.json()["cached"] is True
    assert held(tenant, model=model) == dict.fromkeys(expected, total)


def test_a_refused_generation_slot_returns_the_reservation(api, zoo):
    tenant, key = zoo
    quota_set(tenant=tenant, max_concurrent_generations=1)
    with generation_slot(tenant=tenant):
        refused = ask(api, key)
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    # The tokens were reserved first (the windows exist) and all handed back.
    windows = held(tenant)
    assert set(windows) == {(None, "hour"), (None, "day")}
    assert set(windows.values()) == {0}
    assert answer_tokens_metered(tenant) == 0


def test_openai_sdk_gets_a_rate_limit_error_it_does_not_retry(web_server, zoo):
    tenant, key = zoo
    quota_set(tenant=tenant, tokens_per_day=30)
    client = openai.OpenAI(api_key=key, base_url=web_server.url + "/v1", max_retries=2)
    model = next(m.id for m in client.models.list() if "MiniLM" not in m.id)  # a generator
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=8
        )
    error = refused.value
    assert error.status_code == 429 and error.code == "token_budget_exhausted"
    assert error.type == "rate_limit_error" and "day" in error.message
    headers = error.response.headers
    assert int(headers["retry-after"]) > 0 and headers["x-should-retry"] == "false"
    # One request reached the server: the SDK, told not to, did not retry.
    admitted = RequestCounter.objects.filter(tenant=tenant, kind="answer")
    assert sum(row.count for row in admitted) == 1
    assert all(tokens == 0 for tokens in held(tenant).values())
