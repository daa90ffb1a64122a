"""Retrieval evaluation: per-tenant sets of questions with known relevant documents, and runs
that measure vector, keyword and hybrid search on them (recall@k, MRR, nDCG@10), overall and
per archetype (the kind of user asking: analyst, manager, ...).

Why per tenant and under RLS: the questions say what a tenant's users ask and which of its
documents answer, which is the tenant's data like the documents themselves. Why documents and
not chunks: a question is answered by a document, and chunking changes between runs (that is
one of the things a run measures); counting each document once, at its best-ranked chunk,
keeps runs with different chunking comparable.

Answer evaluation (answers.py, answer_metrics.py) asks the same sets' questions that carry
expected facts or are marked unanswerable of the answer path, per model and answer policy:
accuracy, refusals, citation precision, groundedness, TTFT and tokens/s. example.py loads the
shipped example set (rag/evalsets/) and the project's own documents it is about.

The API-free paths (the `evaluate` command, the console through a Celery task) call the same
functions here.
"""

from .answer_metrics import (
    ANSWER_METRIC_LABELS,
    ANSWER_METRICS,
    answer_aggregate,
    answer_score,
    fact_present,
    facts_present,
    refused,
)
from .answers import (
    POLICIES,
    answer_evaluation_compare,
    answer_evaluation_run,
    answer_models,
)
from .example import EXAMPLE_SET, example_load
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
    retrieval_questions,
)

__all__ = [
    "ANSWER_METRICS",
    "ANSWER_METRIC_LABELS",
    "EXAMPLE_SET",
    "MAX_K",
    "MAX_NAME",
    "METRICS",
    "MODES",
    "POLICIES",
    "EvalImportError",
    "answer_aggregate",
    "answer_evaluation_compare",
    "answer_evaluation_run",
    "answer_models",
    "answer_score",
    "chunk_depth",
    "evalrun_queue",
    "evalset_import",
    "evaluation_compare",
    "evaluation_previous",
    "evaluation_run",
    "evaluation_settings",
    "example_load",
    "fact_present",
    "facts_present",
    "format_delta",
    "ndcg_at_k",
    "ranked_documents",
    "recall_at_k",
    "reciprocal_rank",
    "refused",
    "retrieval_questions",
]
