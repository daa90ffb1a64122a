"""Hybrid retrieval inside one tenant's store: vector (pgvector HNSW), keyword (tsvector) and
reciprocal rank fusion of both.

Pool tables hold every pool tenant's chunks in one HNSW index and RLS filters the rows the index
walk yields, so a small tenant could get fewer than k hits. Two defences: pgvector's iterative
index scan keeps walking until enough rows pass, and a tenant that is small for its table (see
_search_exactly) is searched exactly (its rows by the tenant_id index, then sorted), which is
also faster than a walk that would skip mostly other tenants' rows.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections

from observability.genai import observe_embedding, observe_search, stage
from tenants.after_response import after_response
from tenants.context import data_alias, tenant_context
from tenants.models import Tenant, UsageKind
from tenants.services.provisioning import tenant_require_active
from tenants.services.usage import usage_record

from ..embedding import embed_texts
from ..embedding import model_id as embedding_model_id
from ..filters import compile_filters
from ..tokenizer import count_tokens
from .cache import embedding_cache_read, embedding_cache_store, text_sha256
from .querylog import querylog_record

MODES = ("hybrid", "vector", "keyword")
# Fusion constants, chosen on Django's documentation (make bench, quality; 77 questions, scored
# by documents; issue 15's note has the sweep): k 20 with the keyword half at 0.7 of the
# vector half's share gave hybrid MRR@5 0.86 offline, k 30 at 0.5 0.85, k 60 at 0.5 (the first
# choice) 0.83 offline and 0.84 in make bench. Steeper weights (a smaller k) trust
# each half's first places; a smaller keyword share keeps a chunk that merely repeats the
# question's words from outranking the passage that answers it. The settings around these
# were within two questions of each other, and were tuned on the evaluation set itself.
RRF_K = 20
KEYWORD_WEIGHT = 0.7


class UnknownDocuments(LookupError):
    """`document_ids` named a document the tenant does not have (another tenant's, or none):
    the two look the same (404), so an id tells nothing about other tenants."""


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: str
    title: str
    heading_path: str
    text: str
    score: float
    metadata: dict


@dataclass(frozen=True)
class DocumentHit:
    """A document among a search's results: its best chunks, best first, and the best one's
    score (the document's rank). What readers of a manual want: pages, not fragments."""

    document_id: str
    title: str
    score: float
    metadata: dict
    chunks: list[SearchHit]


@dataclass
class SearchResult:
    hits: list[SearchHit]
    timings: dict = field(default_factory=dict)
    documents: list[DocumentHit] | None = None  # with group_by="document"
    # What each hit adds to its document's rank: its fused score in hybrid search, else its
    # reciprocal rank (documents_grouped).
    evidence: list[float] = field(default_factory=list)
    # Cosine similarity of the query and each chunk the vector half ranked (chunk id ->
    # similarity): an absolute measure of relevance, which rank fusion's scores are not.
    similarities: dict[int, float] = field(default_factory=dict)


# pgvector refuses a larger hnsw.ef_search; the iterative scan finds rows past it.
HNSW_EF_SEARCH_MAX = 1000
GROUP_BY = ("chunk", "document")
# With group_by="document", chunks ranked per document asked for: enough for each document's
# top chunks, and to fill k documents when a few documents hold most of the best chunks.
CANDIDATES_PER_DOCUMENT = 4
MAX_CANDIDATES = 300
# Chunks whose evidence adds up to a document's rank (documents_grouped).
DOCUMENT_EVIDENCE_CHUNKS = 3


def documents_grouped(
    hits: list[SearchHit], k: int, per_document: int, evidence: list[float] | None = None
) -> list[DocumentHit]:
    """The `k` best documents of ranked `hits`, each with up to `per_document` of its chunks in
    rank order.

    A document ranks by the evidence of its best DOCUMENT_EVIDENCE_CHUNKS chunks, each worth
    half the one before: a page with several passages on the question is likelier to be about
    it than a page with one lucky passage. `evidence[i]` is what hit i adds (its fused score in
    hybrid search, else its reciprocal rank); without it, reciprocal ranks. On Django's
    documentation (the quality section's pages and questions, offline, fusion k 60) this lifted
    hybrid MRR@5 from 0.84 to 0.86, vector from 0.79 to 0.84 and keyword from 0.61 to 0.72,
    against ranking a page by its best chunk alone.
    The document's `score` is that sum.
    """
    if evidence is None:
        evidence = [1.0 / (RRF_K + position) for position in range(1, len(hits) + 1)]
    groups: dict[str, list[SearchHit]] = {}
    totals: dict[str, float] = {}
    counted: dict[str, int] = {}
    for hit, weight in zip(hits, evidence, strict=True):
        seen = counted.get(hit.document_id, 0)
        if seen < DOCUMENT_EVIDENCE_CHUNKS:
            totals[hit.document_id] = totals.get(hit.document_id, 0.0) + weight * 0.5**seen
        counted[hit.document_id] = seen + 1
        chunks = groups.setdefault(hit.document_id, [])
        if len(chunks) < per_document:
            chunks.append(hit)
    # dicts keep first appearance: ties go to the document whose best chunk ranked higher.
    best = sorted(groups, key=lambda document_id: -totals[document_id])[:k]
    return [
        DocumentHit(
            document_id,
            groups[document_id][0].title,
            round(totals[document_id], 6),
            groups[document_id][0].metadata,
            groups[document_id],
        )
        for document_id in best
    ]


def chunk_search(
    *,
    tenant: Tenant,
    query: str,
    k: int = 5,
    mode: str = "hybrid",
    filters: dict | None = None,
    document_ids: list | None = None,
    observe: bool = True,
) -> SearchResult:
    """The tenant's k best chunks for `query`. Raises FilterError for a bad filter and
    UnknownDocuments when `document_ids` names a document the tenant does not have.

    `observe=False` when the search is a stage of something else (an answer's retrieval),
    which reports itself.
    """
    started = time.perf_counter()
    clauses, params = _document_filter(filters)
    if document_ids:
        clauses.append("c.document_id = ANY(%s::uuid[])")
        params.append([str(d) for d in document_ids])
    # Each side of hybrid search ranks twice k candidates (at least 20) for the fusion.
    pool = max(k * 2, 20) if mode == "hybrid" else k
    labels = {"tenantry.tenant": tenant.slug}

    def retrieve(cursor, vector):
        with stage("retrieve", **labels, **{"tenantry.search.mode": mode}):
            if document_ids:
                _require_documents(cursor, document_ids)
            ranked: list[list[tuple[int, float]]] = []
            if vector is not None:
                ranked.append(_vector_ids(cursor, vector, pool, clauses, params))
            if mode in ("hybrid", "keyword"):
                ranked.append(_keyword_ids(cursor, query, pool, clauses, params))
            scored = _fuse(ranked, k) if mode == "hybrid" else ranked[0][:k]
            return ranked, scored, _load(cursor, scored)

    wants_vector = mode in ("hybrid", "vector")
    backend = tenant.embedding_backend  # the one its chunks were embedded with
    model, query_sha = embedding_model_id(backend), text_sha256(query)
    vector = found = None
    # One transaction when the query's vector is cached: its read, then the search. A miss
    # leaves the transaction to embed (no transaction waits on a model), and the vector is
    # cached once the response has gone.
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        if wants_vector:
            with stage("embed", model=model, **labels):
                vector = embedding_cache_read(cursor, model=model, hashes=[query_sha]).get(
                    query_sha
                )
        embedded = time.perf_counter()
        if vector is not None or not wants_vector:
            found = retrieve(cursor, vector)
    if wants_vector:
        observe_embedding(tenant=tenant, texts=1, cached=int(vector is not None), purpose="query")
    if found is None:
        with stage("embed", model=model, **labels):
            vector = embed_texts([query], backend=backend)[0]
        after_response(embedding_cache_store, tenant=tenant, model=model, rows={query_sha: vector})
        embedded = time.perf_counter()
        with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
            found = retrieve(cursor, vector)
    ranked, scored, hits = found
    if mode == "hybrid":
        fused = dict(scored)
        evidence = [fused[hit.chunk_id] for hit in hits]
    else:
        evidence = [1.0 / (RRF_K + position) for position in range(1, len(hits) + 1)]
    done = time.perf_counter()
    timings = {
        "embed_ms": round((embedded - started) * 1000, 2),
        "search_ms": round((done - embedded) * 1000, 2),
        "total_ms": round((done - started) * 1000, 2),
    }
    if observe:
        observe_search(tenant=tenant, mode=mode, timings=timings)
    similarities = dict(ranked[0]) if vector is not None else {}
    return SearchResult(hits=hits, timings=timings, evidence=evidence, similarities=similarities)


def _document_filter(filters: dict | None) -> tuple[list[str], list]:
    """Metadata conditions as one condition on chunks: their document's metadata matches.

    Metadata is the document's (not copied into each chunk), so the filter selects documents;
    a semi-join on the primary key costs the chunk scan one probe per candidate row, and the
    documents it reads are the tenant's own (row-level security applies to the subquery too).
    """
    clauses, params = compile_filters(filters, column="d.metadata")
    if not clauses:
        return [], []
    matching = " AND ".join(clauses)
    # The clauses are compile_filters' own fragments; every value is a bound parameter.
    condition = f"c.document_id IN (SELECT d.id FROM rag_document d WHERE {matching})"  # noqa: S608
    return [condition], params


def _require_documents(cursor, document_ids: list) -> None:
    wanted = {str(d) for d in document_ids}
    cursor.execute("SELECT count(*) FROM rag_document WHERE id = ANY(%s::uuid[])", [sorted(wanted)])
    if cursor.fetchone()[0] != len(wanted):
        raise UnknownDocuments("No such document.")


def _where(clauses: list[str]) -> str:
    return " AND ".join(["TRUE", *clauses])


def _vector_ids(cursor, vector, limit: int, clauses, params) -> list[tuple[int, float]]:
    literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
    # One round trip: the tenant's size, and the index settings for this transaction (used only
    # when the HNSW index is). The candidate list has room for rows that row-level security or
    # a filter drops, so the iterative scan rarely needs a second pass.
    cursor.execute(
        "SELECT coalesce(sum(chunks_total), 0), "
        "greatest((SELECT reltuples FROM pg_class WHERE oid = 'rag_chunk'::regclass), 0), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('hnsw.ef_search', %s, true) "
        "FROM rag_document WHERE status = 'ready'",
        [str(min(max(settings.HNSW_EF_SEARCH, 2 * limit), HNSW_EF_SEARCH_MAX))],
    )
    tenant_chunks, table_rows, *_ = cursor.fetchone()
    exact = _search_exactly(tenant_chunks, max(int(table_rows), tenant_chunks), limit)
    # `+ 0` hides the expression from the HNSW index: the planner then takes the tenant's rows
    # (tenant_id index) and sorts them: exact, and fast for a small tenant.
    order = "(c.embedding <=> %s::vector) + 0" if exact else "c.embedding <=> %s::vector"
    sql = (
        "WITH nearest AS MATERIALIZED ("  # noqa: S608 - clauses are compiled, values bound
        f"SELECT c.id, c.embedding <=> %s::vector AS distance FROM rag_chunk c "
        f"WHERE {_where(clauses)} ORDER BY {order} LIMIT %s) "
        "SELECT id, distance FROM nearest ORDER BY distance, id"
    )
    cursor.execute(sql, [literal, *params, literal, limit])
    return [(row[0], 1.0 - float(row[1])) for row in cursor.fetchall()]


def _search_exactly(tenant_chunks: int, table_rows: int, limit: int) -> bool:
    """Whether reading all the tenant's rows beats walking the HNSW index.

    Exact search reads every row of the tenant (about 3.4 us a row here: the rows are wide);
    an index walk filtered to the tenant visits about limit * table_rows / tenant_chunks
    candidates (about 10 us each). Exact wins below sqrt(3 * limit * table_rows) chunks: a
    small tenant among many large ones in the pool, or any store below
    SEARCH_EXACT_BELOW_CHUNKS. In a bridge schema or a silo database the table holds the
    tenant alone, so the index serves it from that floor up. (The 3 is
    SEARCH_EXACT_CROSSOVER; 0 leaves only the floor.)
    """
    crossover = math.sqrt(settings.SEARCH_EXACT_CROSSOVER * limit * table_rows)
    return tenant_chunks < max(settings.SEARCH_EXACT_BELOW_CHUNKS, crossover)


def _keyword_ids(cursor, query: str, limit: int, clauses, params) -> list[tuple[int, float]]:
    """Chunks ranked by ts_rank against any of the query's words (english stemming).

    Any word, not every word: a question rarely holds every word of its answer, and requiring
    all of them first (then any, over a capped, unordered candidate set) ranked Django's
    documentation at recall@5 0.53; any word, all matches ranked: 0.86 (issue 15). The
    candidates are bounded by how rare each word is in this tenant's store (its own statistics,
    whatever else the pool holds): they are the chunks holding a word that fewer than
    KEYWORD_CANDIDATES chunks hold, so at most that many per word, and ranking still counts
    every word. A query of common words alone ranks the chunks holding all of them (else any),
    at most KEYWORD_RANK_MAX of them: the one place a large tenant's ranking is approximate.
    """
    # The candidates come from an index (GIN for rare words, the tenant_id index for common
    # ones), never a sequential scan: chunk rows are wide (text, vector), and a sequential scan
    # reads other tenants' pages in pool mode before it finds enough of this tenant's matches.
    # The setting goes with the word split (one round trip) and holds for the rest of the
    # transaction: what follows is this search's own statements, each served by an index.
    cursor.execute(
        "SELECT tsvector_to_array(to_tsvector('english', %s)), "
        "set_config('enable_seqscan', 'off', true)",
        [query],
    )
    words = [_tsquery_lexeme(lexeme) for lexeme in cursor.fetchone()[0]]
    if not words:
        return []
    cap = settings.KEYWORD_CANDIDATES
    cursor.execute(
        "SELECT w, (SELECT count(*) FROM (SELECT 1 FROM rag_chunk c "  # noqa: S608
        f"WHERE c.search_vector @@ w::tsquery AND {_where(clauses)} LIMIT %s) held) "
        "FROM unnest(%s::text[]) AS w",
        [*params, cap, words],
    )
    rare = [word for word, held in cursor.fetchall() if held < cap]
    every_word = " | ".join(words)
    if rare:
        attempts = [(" | ".join(rare), None)]
    else:
        attempts = [(" & ".join(words), settings.KEYWORD_RANK_MAX)]
        if len(words) > 1:
            attempts.append((every_word, settings.KEYWORD_RANK_MAX))
    for candidates, bound in attempts:
        sql = (
            "SELECT id, ts_rank(search_vector, %s::tsquery, 1) AS rank FROM ("  # noqa: S608
            "SELECT c.id, c.search_vector FROM rag_chunk c "
            f"WHERE c.search_vector @@ %s::tsquery AND {_where(clauses)}"
            f"{' LIMIT %s' if bound else ''}) candidates ORDER BY rank DESC, id LIMIT %s"
        )
        cursor.execute(sql, [every_word, candidates, *params, *([bound] if bound else []), limit])
        if cursor.rowcount:
            break
    return [(row[0], float(row[1])) for row in cursor.fetchall()]


def _tsquery_lexeme(lexeme: str) -> str:
    """A lexeme as a tsquery operand: quoted, its quotes and backslashes doubled, so a word of
    any punctuation is matched as itself and never read as an operator."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _fuse(ranked: list[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of the vector ranking and the keyword ranking."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(ranked, (1.0, KEYWORD_WEIGHT), strict=True):
        for position, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (RRF_K + position)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


def _load(cursor, scored: list[tuple[int, float]]) -> list[SearchHit]:
    if not scored:
        return []
    cursor.execute(
        "SELECT c.id, c.document_id, d.title, c.heading_path, c.text, d.metadata "
        "FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id WHERE c.id = ANY(%s)",
        [[chunk_id for chunk_id, _ in scored]],
    )
    rows = {row[0]: row for row in cursor.fetchall()}
    hits = []
    for chunk_id, score in scored:
        row = rows.get(chunk_id)
        if row is not None:
            metadata = json.loads(row[5]) if isinstance(row[5], str) else (row[5] or {})
            hits.append(
                SearchHit(chunk_id, str(row[1]), row[2], row[3], row[4], round(score, 6), metadata)
            )
    return hits


def search_run(
    *,
    tenant: Tenant,
    query: str,
    k: int = 5,
    mode: str = "hybrid",
    filters: dict | None = None,
    document_ids: list | None = None,
    group_by: str = "chunk",
    chunks_per_document: int = 3,
    api_key=None,
    source: str = "api",
) -> SearchResult:
    """A search as a caller asks for it (the API, `manage.py search`): run, metered on the
    tenant's ledger and written to its query log, the same way whichever interface asked.
    Raises TenantNotActive for a suspended tenant, and what chunk_search raises; nothing is
    metered or logged for a refused search.

    With `group_by="document"`, `k` counts documents: more chunks are ranked, then grouped
    (`documents_grouped`), and `hits` holds the grouped chunks in rank order."""
    tenant_require_active(tenant=tenant)
    grouped = group_by == "document"
    candidates = min(k * chunks_per_document * CANDIDATES_PER_DOCUMENT, MAX_CANDIDATES)
    result = chunk_search(
        tenant=tenant,
        query=query,
        k=candidates if grouped else k,
        mode=mode,
        filters=filters,
        document_ids=document_ids,
    )
    if grouped:
        result.documents = documents_grouped(result.hits, k, chunks_per_document, result.evidence)
        kept = {hit.chunk_id for d in result.documents for hit in d.chunks}
        pairs = [
            (h, e) for h, e in zip(result.hits, result.evidence, strict=True) if h.chunk_id in kept
        ]
        result.hits = [hit for hit, _ in pairs]
        result.evidence = [weight for _, weight in pairs]
    # The ledger and the log change nothing the caller gets: written after the response.
    after_response(
        usage_record,
        tenant=tenant,
        api_key=api_key,
        kind=UsageKind.SEARCH,
        # Keyword search embeds nothing.
        embedding_tokens=count_tokens(query) if mode != "keyword" else 0,
    )
    after_response(
        querylog_record,
        tenant=tenant,
        kind="search",
        question=query,
        mode=mode,
        k=k,
        timings=dict(result.timings),
        citations=list(result.hits),
        api_key=api_key,
        source=source,
    )
    return result
