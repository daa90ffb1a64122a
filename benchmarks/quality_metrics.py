"""Ranking metrics over distinct documents with binary relevance.

A search answers chunks; a user reads documents. So hits are collapsed to documents in rank
order first, and each question counts once whatever the number of its relevant pages.
"""

from __future__ import annotations

import math


def distinct(ranked: list[str]) -> list[str]:
    """The documents of `ranked` hits in order of their first appearance."""
    return list(dict.fromkeys(ranked))


def scores(rankings: list[list[str]], relevant: list[set[str]]) -> dict:
    """recall@5 (a relevant page among the first five documents), MRR@5 and nDCG@10."""
    found, reciprocal, ndcg = 0, 0.0, 0.0
    for ranking, answers in zip(rankings, relevant, strict=True):
        docs = distinct(ranking)
        first = next((i for i, d in enumerate(docs[:5], start=1) if d in answers), None)
        if first:
            found += 1
            reciprocal += 1 / first
        dcg = sum(1 / math.log2(i + 1) for i, d in enumerate(docs[:10], start=1) if d in answers)
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(answers), 10) + 1))
        ndcg += dcg / ideal
    n = len(rankings) or 1
    return {
        "recall_at_5": round(found / n, 3),
        "mrr_at_5": round(reciprocal / n, 3),
        "ndcg_at_10": round(ndcg / n, 3),
    }


def rrf(rankings: list[list[int]], k: int = 60) -> list[int]:
    """Reciprocal rank fusion of rankings of ids (best first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for position, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + position)
    return sorted(fused, key=lambda item: (-fused[item], item))
