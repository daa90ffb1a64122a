"""The usage ledger: record what tenants use, and report it against their quotas.

Recording is one upsert per call into the (tenant, key, hour, kind) bucket, on the metering
connection, so it commits at once whatever becomes of the request that used the resources.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections
from django.db.models import Sum
from django.db.models.functions import Coalesce

from ..context import tenant_context
from ..models import ApiKey, RequestCounter, Tenant, UsageKind, UsageRecord
from ..planes import data_plane
from .quotas import (
    KINDS,
    METERING_DB,
    NOW_SQL,
    WINDOW_SECONDS,
    WINDOW_START_SQL,
    clock_params,
    generations_running,
    kind_value,
    quota_get,
)
from .token_budgets import token_budget_usage

LEDGER_COUNTERS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "embedding_tokens",
    "generation_ms",
)

RECORD_SQL = f"""
INSERT INTO tenants_usagerecord AS ledger (
    tenant_id, api_key_id, hour, kind, model,
    requests, prompt_tokens, completion_tokens, embedding_tokens, generation_ms
)
VALUES (
    %(tenant_id)s, %(api_key_id)s, {WINDOW_START_SQL}, %(kind)s, %(model)s,
    %(requests)s, %(prompt_tokens)s, %(completion_tokens)s, %(embedding_tokens)s,
    %(generation_ms)s
)
ON CONFLICT ON CONSTRAINT usage_record_unique_bucket DO UPDATE SET
    requests = ledger.requests + EXCLUDED.requests,
    prompt_tokens = ledger.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = ledger.completion_tokens + EXCLUDED.completion_tokens,
    embedding_tokens = ledger.embedding_tokens + EXCLUDED.embedding_tokens,
    generation_ms = ledger.generation_ms + EXCLUDED.generation_ms
"""  # noqa: S608 - only the constant clock expression is formatted in


def usage_record(
    *,
    tenant: Tenant,
    api_key: ApiKey | None = None,
    kind: str,
    model: str = "",
    requests: int = 1,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    embedding_tokens: int = 0,
    generation_ms: int = 0,
) -> None:
    """Add to the tenant's ledger for this hour, for `api_key` (None: no key, e.g. a command)
    and `model` (the generation model of an answer; "" for kinds that use none)."""
    kind = kind_value(kind)
    amounts = {
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "embedding_tokens": embedding_tokens,
        "generation_ms": generation_ms,
    }
    for name, value in amounts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}.")
    with connections[METERING_DB].cursor() as cursor:
        cursor.execute(
            RECORD_SQL,
            {
                "tenant_id": tenant.pk,
                "api_key_id": getattr(api_key, "pk", api_key),
                "kind": kind,
                "model": model,
                **amounts,
                **clock_params(),
            },
        )


def usage_summary(*, tenant: Tenant) -> dict:
    """The tenant's current usage against each of its quotas (selector).

    Requests: this hour's admitted requests per kind, with the window's reset time.
    `last_24h`: the ledger's totals (requests, tokens, generation time) of the current hour
    and the 23 before, all keys together; `answers_by_model` the same for answers, per model.
    Storage:
    documents and bytes, read in the tenant's own store. Generations: leases running now.
    Token budgets: tokens reserved or used this hour and this UTC day, per model.
    """
    quota = quota_get(tenant=tenant)
    window_start, now = _clock()
    reset = window_start + timedelta(seconds=WINDOW_SECONDS)
    used = dict(
        RequestCounter.objects.using(METERING_DB)
        .filter(tenant_id=tenant.pk, window_start=window_start)
        .values_list("kind", "count")
    )
    requests = {}
    for kind in KINDS:
        limit = getattr(quota, f"{kind}_per_hour")
        count = used.get(kind, 0)
        requests[kind] = {
            "used": count,
            "limit": limit,
            "remaining": max(0, limit - count),
            "reset": reset,
        }
    since = window_start - timedelta(hours=23)
    tokens = _ledger_totals(tenant, since)
    by_model = _answers_by_model(tenant, since)
    with tenant_context(tenant):
        stored = data_plane().stored()
    return {
        "tenant": tenant.slug,
        "as_of": now,
        "requests": requests,
        "last_24h": tokens,
        "answers_by_model": by_model,
        "documents": {"used": stored.documents, "limit": quota.max_documents},
        "storage_bytes": {"used": stored.bytes, "limit": quota.max_storage_bytes},
        "concurrent_generations": {
            "running": generations_running(tenant=tenant),
            "limit": quota.max_concurrent_generations,
        },
        "max_tokens_per_response": quota.max_tokens_per_response,
        "token_budgets": token_budget_usage(tenant=tenant),
    }


def usage_series(*, tenant: Tenant, hours: int = 168) -> list[dict]:
    """Ledger rows of the last `hours` hours (the current one included), summed over keys:
    one dict per hour and kind, oldest first (selector, for charts)."""
    if hours < 1:
        raise ValueError("hours must be at least 1.")
    window_start, _ = _clock()
    rows = (
        UsageRecord.objects.using(METERING_DB)
        .filter(tenant_id=tenant.pk, hour__gte=window_start - timedelta(hours=hours - 1))
        .values("hour", "kind")
        .annotate(**{name: Sum(name) for name in LEDGER_COUNTERS})
        .order_by("hour", "kind")
    )
    return list(rows)


def _ledger_totals(tenant: Tenant, since: datetime) -> dict[str, int]:
    records = UsageRecord.objects.using(METERING_DB).filter(tenant_id=tenant.pk, hour__gte=since)
    return records.aggregate(**{name: Coalesce(Sum(name), 0) for name in LEDGER_COUNTERS})


def _answers_by_model(tenant: Tenant, since: datetime) -> list[dict]:
    """The ledger's answer rows since `since`, summed per generation model (the model is the
    ledger's own string: the kernel knows no model registry)."""
    rows = (
        UsageRecord.objects.using(METERING_DB)
        .filter(tenant_id=tenant.pk, hour__gte=since, kind=UsageKind.ANSWER)
        .values("model")
        .annotate(**{name: Sum(name) for name in LEDGER_COUNTERS if name != "embedding_tokens"})
        .order_by("model")
    )
    return list(rows)


def _clock() -> tuple[datetime, datetime]:
    """The start of the current window and now, by the database's clock (as admission uses)."""
    with connections[METERING_DB].cursor() as cursor:
        cursor.execute(f"SELECT {WINDOW_START_SQL}, {NOW_SQL}", clock_params())
        return cursor.fetchone()
