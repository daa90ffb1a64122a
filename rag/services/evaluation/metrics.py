"""Retrieval metrics on ranked document ids (pure functions), and their shared constants."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence

logger = logging.getLogger(__name__)

MODES = ("vector", "keyword", "hybrid")
METRICS = ("recall@k", "mrr", "ndcg@10")
NDCG_DEPTH = 10
MAX_K = 50
MAX_QUESTIONS = 10_000
MAX_NAME = 200
MAX_ARCHETYPE = 50
MAX_EXTERNAL_ID = 255
QUESTION_KEYS = {
    "question",
    "relevant",
    "relevant_document_ids",
    "relevant_external_ids",
    "archetype",
    "expected_facts",
    "unanswerable",
}
MAX_FACTS = 20  # per question, and alternatives per fact
MAX_FACT = 200
# A relevant document named by an external id no document has (yet) stays in the relevant set
# under this prefix: it can never be retrieved, so it counts as missed, not as absent.
MISSING = "missing:"

Progress = Callable[[int, int], None]


class EvalImportError(ValueError):
    """A JSONL line (or the set as a whole, line None) is invalid; nothing was stored."""

    def __init__(self, line: int | None, reason: str):
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.line, self.reason = line, reason


# --- metrics (pure) ---------------------------------------------------------------------------


def ranked_documents(document_ids: Iterable[str]) -> list[str]:
    """Hit document ids in rank order, each document once at its best rank.

    Search returns chunks; several chunks of one document must not count as several relevant
    results (recall over 1) nor push other documents down the document ranking.
    """
    seen: dict[str, None] = {}
    for document_id in document_ids:
        seen.setdefault(str(document_id), None)
    return list(seen)


def recall_at_k(ranked_doc_ids: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """|relevant ∩ ranked[:k]| / |relevant|: the share of relevant documents found in the top
    k documents. 0.0 when nothing is relevant (an empty relevant set cannot be recalled)."""
    wanted = set(relevant)
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranked_doc_ids[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / r, where r is the 1-based rank of the first relevant document in `ranked`; 0.0 if
    none is there. The caller decides the depth (runs pass the top k documents: MRR@k)."""
    wanted = set(relevant)
    for rank, document_id in enumerate(ranked, start=1):
        if document_id in wanted:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int = NDCG_DEPTH) -> float:
    """Normalised discounted cumulative gain with binary relevance.

    DCG@k = Σ_{i=1..k} rel_i / log2(i + 1), rel_i = 1 if the document at rank i is relevant;
    IDCG@k = Σ_{i=1..min(|relevant|, k)} 1 / log2(i + 1), the DCG of a perfect ranking;
    nDCG@k = DCG@k / IDCG@k, in [0, 1]; 0.0 when nothing is relevant.
    """
    wanted = set(relevant)
    if not wanted:
        return 0.0
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, document_id in enumerate(ranked[:k], start=1)
        if document_id in wanted
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


def format_delta(delta: float) -> str:
    """A metric's change from the previous run as shown everywhere (console and `evaluate`):
    "+0.050", "-0.020", and "±0.000" for a change that rounds to nothing at three places."""
    if round(delta, 3) == 0:
        return "±0.000"
    return f"{delta:+.3f}"


def section_delta(now: dict, before: dict | None, metrics) -> dict:
    """A run's section ({"overall": {...}, "archetypes": {name: {...}}}) minus the previous
    run's, metric by metric; None where either side has no value. Retrieval and answer runs
    compare alike."""

    def delta(values: dict, old: dict | None) -> dict:
        return {
            metric: (
                values[metric] - old[metric]
                if old and values.get(metric) is not None and old.get(metric) is not None
                else None
            )
            for metric in metrics
            if metric in values
        }

    before = before or {}
    return {
        "overall": delta(now.get("overall", {}), before.get("overall")),
        "archetypes": {
            name: delta(values, before.get("archetypes", {}).get(name))
            for name, values in now.get("archetypes", {}).items()
        },
    }
