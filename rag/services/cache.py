"""Caches that never compute twice and never leak: embeddings and deterministic answers.

Both live in the tenant's own placement under row-level security (see rag.models), so a cache
entry is readable only inside its tenant's context, like the documents it came from. Answers
are keyed on the tenant's corpus version, which a trigger bumps on every document change: a
changed corpus can never be answered from the old one.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
from django.db import connections

from observability.genai import observe_embedding
from tenants.context import data_alias, tenant_context
from tenants.models import Tenant

from ..embedding import embed_texts, model_id
from ..models import AnswerCacheEntry, CorpusVersion

logger = logging.getLogger(__name__)

# Bump when the prompt or the answer's shape changes: old entries then simply stop matching.
ANSWER_CACHE_FORMAT = 1


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embeddings_cached(
    *, tenant: Tenant, texts: list[str], purpose: str, backend: str | None = None
) -> np.ndarray:
    """Unit vectors for `texts` from `backend` (default: the tenant's), from the tenant's
    embedding cache where it has them; the rest are embedded in one model call and stored.
    Same results as `embed_texts`."""
    backend = backend or tenant.embedding_backend
    if not texts:
        return embed_texts([], backend=backend)
    model = model_id(backend)
    hashes = [text_sha256(t) for t in texts]
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        found = embedding_cache_read(cursor, model=model, hashes=hashes)
    missing = [i for i, sha in enumerate(hashes) if sha not in found]
    if missing:
        fresh = embed_texts([texts[i] for i in missing], backend=backend)
        rows = {hashes[i]: vector for i, vector in zip(missing, fresh, strict=True)}
        embedding_cache_store(tenant=tenant, model=model, rows=rows)
        found.update(rows)
    observe_embedding(
        tenant=tenant, texts=len(texts), cached=len(texts) - len(missing), purpose=purpose
    )
    return np.stack([found[sha] for sha in hashes]).astype(np.float32, copy=False)


def embedding_cache_read(cursor, *, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
    """The cached vectors of `hashes` (text_sha256), read through `cursor`, which the caller
    holds in its tenant's context: a search reads its query's vector in the transaction it
    searches in. Marks the hits used, at most once a day each (retention is by days)."""
    cursor.execute(
        "WITH hit AS (SELECT id, text_sha256, embedding FROM rag_embeddingcacheentry "
        "WHERE model = %s AND text_sha256 = ANY(%s)), "
        "touched AS (UPDATE rag_embeddingcacheentry e SET last_used_at = now() FROM hit "
        "WHERE e.id = hit.id AND e.last_used_at < now() - interval '1 day') "
        "SELECT text_sha256, embedding::text FROM hit",
        [model, list(set(hashes))],
    )
    return {sha: _parse_vector(vector) for sha, vector in cursor.fetchall()}


def embedding_cache_store(*, tenant: Tenant, model: str, rows: dict[str, np.ndarray]) -> None:
    """Cache `rows` (text_sha256 -> vector) in the tenant's store; a row another request
    stored meanwhile stays. One statement for the whole batch (not one round trip a vector)."""
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(
            "INSERT INTO rag_embeddingcacheentry (model, text_sha256, embedding) "
            "SELECT %s, sha, vector::vector FROM unnest(%s::text[], %s::text[]) AS t(sha, vector) "
            "ON CONFLICT DO NOTHING",
            [model, list(rows), [vector_literal(v) for v in rows.values()]],
        )


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def _parse_vector(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


def corpus_version(*, tenant: Tenant) -> int:
    """The tenant's corpus version (0 before its first document)."""
    with tenant_context(tenant):
        row = CorpusVersion.objects.values_list("version", flat=True).first()
    return row or 0


def answer_cache_key(*, version: int, **decisive) -> str:
    """A key over everything that decides a deterministic answer, and the corpus version."""
    payload = json.dumps(
        {"format": ANSWER_CACHE_FORMAT, "corpus": version, **decisive},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def normalise_question(question: str) -> str:
    return " ".join(question.split()).casefold()


def answer_cache_lookup(*, tenant: Tenant, **decisive) -> tuple[str, int, dict | None]:
    """(key, corpus version, cached response or None) in one tenant-bound transaction."""
    with tenant_context(tenant):
        version = CorpusVersion.objects.values_list("version", flat=True).first() or 0
        key = answer_cache_key(version=version, **decisive)
        response = (
            AnswerCacheEntry.objects.filter(key=key).values_list("response", flat=True).first()
        )
    return key, version, response


def answer_cache_put(*, tenant: Tenant, key: str, version: int, response: dict) -> None:
    """Store an answer; a concurrent identical answer may have won, which is just as good."""
    try:
        with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
            cursor.execute(
                "INSERT INTO rag_answercacheentry (key, corpus_version, response) "
                "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [key, version, json.dumps(response)],
            )
    except Exception:  # a cache must never fail the answer it would have saved
        logger.exception("could not cache an answer for %s", tenant.slug)
