"""The query log: one row per search or answer, in the tenant's own store (under RLS).

Recording never fails the user's request: a log row is worth less than the answer it
describes, so errors are logged and swallowed.

Retention: rows older than QUERY_LOG_RETENTION_DAYS are deleted by the periodic task
`rag.tasks.prune_query_logs`, which also prunes the tenant's data-plane caches (stale cached
answers, long-unused cached embeddings): they hold the same questions and texts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tenants.context import tenant_context
from tenants.models import ApiKey, Tenant, TenantStatus
from tenants.sweep import each_tenant

from ..models import AnswerCacheEntry, CorpusVersion, EmbeddingCacheEntry, QueryLog

logger = logging.getLogger(__name__)


def querylog_record(
    *,
    tenant: Tenant,
    kind: str,
    question: str,
    mode: str,
    k: int,
    timings: dict,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    citations: Iterable = (),
    api_key: ApiKey | None = None,
    source: str = "api",
    status: str = "ok",
    cache_hit: bool = False,
) -> QueryLog | None:
    """Log one query of `tenant`; None if it could not be written (the caller carries on).

    `citations`: answer citations or search hits (objects or dicts with `chunk_id`, and
    `document_id` and `n` when known) or bare chunk ids.
    """
    try:
        row = QueryLog(
            kind=kind,
            question=question if settings.QUERY_LOG_STORE_TEXT else "",
            question_sha256=hashlib.sha256(question.encode()).hexdigest(),
            mode=mode,
            k=k,
            status=status,
            timings=dict(timings),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            citations=[_citation(n, item) for n, item in enumerate(citations, start=1)],
            api_key_prefix=getattr(api_key, "prefix", "") or "",
            source=source,
            cache_hit=cache_hit,
        )
        with tenant_context(tenant):
            row.save(force_insert=True)
        return row
    except Exception:  # the log must never cost the user their answer
        logger.exception("could not write the query log of %s", getattr(tenant, "slug", tenant))
        return None


def _citation(position: int, item) -> dict:
    if isinstance(item, int):
        return {"n": position, "chunk_id": item, "document_id": ""}
    get = item.get if isinstance(item, dict) else lambda name, default: getattr(item, name, default)
    return {
        "n": get("n", position),
        "chunk_id": get("chunk_id", None),
        "document_id": str(get("document_id", "") or ""),
    }


# --- Retention -------------------------------------------------------------------------------
def _cutoff(older_than: datetime | timedelta) -> datetime:
    return timezone.now() - older_than if isinstance(older_than, timedelta) else older_than


def querylog_prune(*, tenant: Tenant, older_than: datetime | timedelta) -> int:
    """Delete the tenant's query log rows created before `older_than` (a moment, or an age);
    returns how many. Bound to the tenant: under RLS no other tenant's row is reachable."""
    with tenant_context(tenant):
        deleted, _ = QueryLog.objects.filter(created_at__lt=_cutoff(older_than)).delete()
    return deleted


def caches_prune(
    *,
    tenant: Tenant,
    answers_older_than: datetime | timedelta,
    embeddings_unused_since: datetime | timedelta,
) -> dict[str, int]:
    """Delete the tenant's cached answers of an older corpus version (they can never match
    again) or created before `answers_older_than`, and cached embeddings last used before
    `embeddings_unused_since`."""
    with tenant_context(tenant):
        version = CorpusVersion.objects.values_list("version", flat=True).first() or 0
        stale = Q(corpus_version__lt=version) | Q(created_at__lt=_cutoff(answers_older_than))
        answers, _ = AnswerCacheEntry.objects.filter(stale).delete()
        embeddings, _ = EmbeddingCacheEntry.objects.filter(
            last_used_at__lt=_cutoff(embeddings_unused_since)
        ).delete()
    return {"answer_cache": answers, "embedding_cache": embeddings}


def retention_enforce(*, tenant: Tenant) -> dict[str, int]:
    """Apply the retention settings to one tenant's query log and caches."""
    pruned = {
        "query_log": querylog_prune(
            tenant=tenant, older_than=timedelta(days=settings.QUERY_LOG_RETENTION_DAYS)
        )
    }
    pruned.update(
        caches_prune(
            tenant=tenant,
            answers_older_than=timedelta(seconds=settings.ANSWER_CACHE_TTL_SECONDS),
            embeddings_unused_since=timedelta(days=settings.EMBEDDING_CACHE_RETENTION_DAYS),
        )
    )
    return pruned


def retention_enforce_everywhere() -> dict[str, dict[str, int] | str]:
    """Every tenant with a store (active or suspended: retention is a promise about data, not
    about service), each in its own tenant context. One tenant's failure (a silo server down)
    is logged and reported, and the others are still pruned."""
    tenants = Tenant.objects.filter(status__in=[TenantStatus.ACTIVE, TenantStatus.SUSPENDED])
    return {
        tenant.slug: outcome.report()
        for tenant, outcome in each_tenant(
            tenants.order_by("slug"), lambda tenant: retention_enforce(tenant=tenant)
        )
    }
