"""The evaluation metrics on hand-computed cases (pure functions, no database)."""

from __future__ import annotations

import math

import pytest

from rag.services.evaluation import (
    chunk_depth,
    ndcg_at_k,
    ranked_documents,
    recall_at_k,
    reciprocal_rank,
)


def test_a_document_counts_once_at_its_best_rank():
    assert ranked_documents(["a", "b", "a", "c", "b", "d"]) == ["a", "b", "c", "d"]
    assert ranked_documents([]) == []


def test_recall_is_the_share_of_relevant_documents_in_the_top_k():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"b", "d", "x"}, 1) == 0.0
    assert recall_at_k(ranked, {"b", "d", "x"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"b", "d", "x"}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, {"a"}, 10) == 1.0
    assert recall_at_k(ranked, set(), 10) == 0.0
    assert recall_at_k([], {"a"}, 10) == 0.0


def test_reciprocal_rank_is_one_over_the_rank_of_the_first_relevant_document():
    assert reciprocal_rank(["a", "b", "c"], {"a"}) == 1.0
    assert reciprocal_rank(["a", "b", "c"], {"c", "b"}) == 0.5
    assert reciprocal_rank(["a", "b", "c"], {"c"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b", "c"], {"x"}) == 0.0
    assert reciprocal_rank([], {"x"}) == 0.0


def test_ndcg_with_binary_relevance():
    ranked = ["a", "b", "c"]
    assert ndcg_at_k(ranked, {"a"}) == 1.0
    # One relevant document at rank 2: (1/log2 3) / 1.
    assert ndcg_at_k(ranked, {"b"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(ranked, {"b"}) == pytest.approx(0.630930, abs=1e-6)
    # Relevant at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2 3).
    assert ndcg_at_k(ranked, {"a", "c"}) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(ranked, {"a", "c"}) == pytest.approx(0.919721, abs=1e-6)
    # A relevant document never retrieved lowers the ideal's share: 1 / (1 + 1/log2 3).
    assert ndcg_at_k(ranked, {"a", "missing"}) == pytest.approx(0.613147, abs=1e-6)
    assert ndcg_at_k(ranked, {"x"}) == 0.0
    assert ndcg_at_k(ranked, set()) == 0.0


def test_ndcg_looks_only_at_the_top_k_and_caps_the_ideal_at_k():
    ranked = [f"d{i}" for i in range(1, 12)]
    assert ndcg_at_k(ranked, {"d11"}, 10) == 0.0
    assert ndcg_at_k(ranked, {"d11"}, 11) == pytest.approx(1 / math.log2(12))
    # Three relevant documents but k=2: both top places relevant is a perfect ranking.
    assert ndcg_at_k(["a", "b", "c"], {"a", "b", "c"}, 2) == 1.0
    assert ndcg_at_k(["a", "x", "b"], {"a", "b", "c"}, 2) == pytest.approx(
        1 / (1 + 1 / math.log2(3))
    )


def test_search_asks_for_enough_chunks_to_fill_the_metrics_depth():
    assert chunk_depth(1) == 40  # nDCG@10 needs 10 documents even when k is smaller
    assert chunk_depth(10) == 40
    assert chunk_depth(25) == 100
    assert chunk_depth(50) == 200
