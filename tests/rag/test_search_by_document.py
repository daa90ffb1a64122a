"""Search grouped by document (`group_by: "document"`): `k` distinct documents, each with its
best chunks in rank order, ranked by the evidence of its best chunks, for the API and the CLI alike; the
grouping never reaches past the tenant's own documents."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from rag.services.search import RRF_K, SearchHit, documents_grouped
from tests.helpers import MODES

# Sections long enough (over CHUNK_MIN_TOKENS) to stay chunks of their own.
LIGHTHOUSE = "\n\n".join(
    f"## Lamp {n}\n\nThe lighthouse keeper trims the lighthouse lamp wick number {n} at dusk "
    "and polishes the lighthouse lens. He climbs the spiral stairs of the tower every evening, "
    "checks the oil in the reservoir, winds the clockwork that turns the lens, and writes the "
    "weather and the passing ships in the lighthouse log before he sleeps."
    for n in range(1, 6)
)
HARBOUR = "# Harbour\n\nFishing boats return to the harbour before the lighthouse is lit."
BAKERY = "# Bakery\n\nThe bakery sells rye bread and almond cakes every morning."


def _hit(chunk_id: int, document_id: str, score: float) -> SearchHit:
    return SearchHit(
        chunk_id, document_id, f"title {document_id}", "", f"text {chunk_id}", score, {}
    )


@pytest.mark.unit
def test_grouping_keeps_rank_order_and_bounds():
    ranked = [_hit(1, "a", 0.9), _hit(2, "a", 0.8), _hit(3, "b", 0.7), _hit(4, "a", 0.6)]
    ranked += [_hit(5, "c", 0.5), _hit(6, "b", 0.4), _hit(7, "d", 0.3)]
    groups = documents_grouped(ranked, k=2, per_document=2)
    assert [g.document_id for g in groups] == ["a", "b"]
    assert [[h.chunk_id for h in g.chunks] for g in groups] == [[1, 2], [3, 6]]
    # Reciprocal ranks (RRF_K + position), each chunk worth half the one before.
    assert [g.score for g in groups] == [
        round(1 / (RRF_K + 1) + 0.5 / (RRF_K + 2) + 0.25 / (RRF_K + 4), 6),
        round(1 / (RRF_K + 3) + 0.5 / (RRF_K + 6), 6),
    ]
    assert documents_grouped([], k=3, per_document=2) == []


@pytest.mark.unit
def test_a_document_with_several_good_chunks_outranks_one_lucky_chunk():
    ranked = [_hit(1, "lucky", 0.9), _hit(2, "about", 0.8), _hit(3, "about", 0.7)]
    ranked += [_hit(4, "about", 0.6), _hit(5, "about", 0.5)]

    groups = documents_grouped(ranked, k=2, per_document=3, evidence=[4, 3, 2, 1, 100])

    assert [g.document_id for g in groups] == ["about", "lucky"]
    # Only the best three chunks of a document count, whatever the fourth would add.
    assert [g.score for g in groups] == [3 + 2 * 0.5 + 1 * 0.25, 4]
    assert [[h.chunk_id for h in g.chunks] for g in groups] == [[2, 3, 4], [1]]


@pytest.mark.parametrize("mode", MODES)
def test_search_by_document_over_the_api(
    mode, make_tenant, make_key, upload, wait_done, search, worker
):
    key, other = make_key(make_tenant(mode)), make_key(make_tenant(mode))
    ids = {}
    for title, text in (("Lighthouse", LIGHTHOUSE), ("Harbour", HARBOUR), ("Bakery", BAKERY)):
        ids[title] = upload(key, text=text, title=title).json()["id"]
    foreign = upload(other, text=LIGHTHOUSE, title="Their lighthouse").json()["id"]
    for doc_id in ids.values():
        assert wait_done(key, doc_id)["status"] == "ready"
    assert wait_done(other, foreign)["status"] == "ready"

    flat = search(key, "lighthouse lamp", k=3, mode="vector")
    assert "documents" not in flat
    assert {hit["document_id"] for hit in flat["results"]} == {ids["Lighthouse"]}

    body = search(
        key, "lighthouse lamp", k=2, mode="vector", group_by="document", chunks_per_document=2
    )
    documents = body["documents"]
    assert [d["document_id"] for d in documents] == [ids["Lighthouse"], ids["Harbour"]]
    assert [len(d["chunks"]) for d in documents] == [2, 1]
    for d in documents:
        scores = [c["score"] for c in d["chunks"]]
        assert scores == sorted(scores, reverse=True)
    # A document's score is its rank (the evidence of its best chunks): descending.
    assert documents[0]["score"] >= documents[1]["score"] > 0
    # `results`: the same chunks, flat, in rank order.
    grouped = {c["chunk_id"] for d in documents for c in d["chunks"]}
    assert {h["chunk_id"] for h in body["results"]} == grouped
    flat_scores = [h["score"] for h in body["results"]]
    assert flat_scores == sorted(flat_scores, reverse=True)
    everything = {
        d["document_id"] for d in search(key, "lighthouse", k=50, group_by="document")["documents"]
    }
    assert {ids["Lighthouse"], ids["Harbour"]} <= everything <= set(ids.values())
    assert foreign not in everything


def test_search_by_document_from_the_cli(make_tenant, make_key, upload, wait_done, worker):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    doc = upload(key, text=LIGHTHOUSE, title="Lighthouse").json()["id"]
    assert wait_done(key, doc)["status"] == "ready"
    out = StringIO()
    call_command("search", tenant.slug, "lighthouse lamp", "--group-by", "document", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("1. [") and f"document {doc}, 3 chunks" in lines[0]
    assert sum(line.startswith("   - ") for line in lines) == 3
