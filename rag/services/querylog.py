"""The query log: one row per search or answer, in the tenant's own store (under RLS).

Recording never fails the user's request: a log row is worth less than the answer it
describes, so errors are logged and swallowed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from django.conf import settings

from tenants.context import tenant_context
from tenants.models import ApiKey, Tenant

from ..models import QueryLog

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
