"""Retrieval evaluation: per-tenant sets of questions with known relevant documents, and runs
that measure vector, keyword and hybrid search on them (recall@k, MRR, nDCG@10), overall and
per archetype (the kind of user asking: analyst, manager, ...).

Why per tenant and under RLS: the questions say what a tenant's users ask and which of its
documents answer, which is the tenant's data like the documents themselves. Why documents and
not chunks: a question is answered by a document, and chunking changes between runs (that is
one of the things a run measures); counting each document once, at its best-ranked chunk,
keeps runs with different chunking comparable.

The API-free paths (the `evaluate` command, the console through a Celery task) call the same
functions here.
"""

from .importing import evalset_import
from .metrics import (
    MAX_K,
    MAX_NAME,
    METRICS,
    MODES,
    EvalImportError,
    format_delta,
    ndcg_at_k,
    ranked_documents,
    recall_at_k,
    reciprocal_rank,
)
from .runs import (
    chunk_depth,
    evalrun_queue,
    evaluation_compare,
    evaluation_previous,
    evaluation_run,
    evaluation_settings,
)

__all__ = [
    "MAX_K",
    "MAX_NAME",
    "METRICS",
    "MODES",
    "EvalImportError",
    "chunk_depth",
    "evalrun_queue",
    "evalset_import",
    "evaluation_compare",
    "evaluation_previous",
    "evaluation_run",
    "evaluation_settings",
    "format_delta",
    "ndcg_at_k",
    "ranked_documents",
    "recall_at_k",
    "reciprocal_rank",
]
