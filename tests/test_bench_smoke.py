"""The benchmark code runs, at its tiny size, so that `make bench` cannot rot unnoticed.

Benchmarks are not tests: no figure is checked here, only that every section runs through the
platform's real code paths and the report is written. `make test` installs the `bench` extra
and langchain-postgres, so the comparison with the peer runs here too.
"""

from __future__ import annotations

import json

from benchmarks import peers
from benchmarks.run import SECTIONS, run


def test_every_section_runs_at_the_small_size(pg, tmp_path):
    results = run(size="small", sections=list(SECTIONS), out=tmp_path, peer=False)

    assert results["ingestion"]["end_to_end_chunks_per_s"]["median"] > 0
    assert set(results["ingestion"]["stages_ms"]) == {"parse", "chunk", "embed", "store"}
    placements = results["search"]["sizes"]["2000"]["placements"]
    assert {"pool", "pool_small_tenant", "bridge", "silo"} <= set(placements)
    assert all(p["recall_at_10"] > 0 for p in placements.values())
    assert results["noisy"]["b_p95_ratio"] > 0
    noisy_ingest = results["noisy_ingest"]
    assert noisy_ingest["b_alone_p50_s"] > 0 and noisy_ingest["b_with_a_p50_s"] > 0
    assert results["overhead"]["overhead_ms"]["n"] == 8
    assert results["answer"]["ttft"]["requests"] > 0
    load = results["load"]
    assert load["stated"]["latency_ms"]["search"]["n"] > 0
    assert load["5xx"] == 0
    assert load["uploads"]["accepted"] > 0 and load["uploads"]["lost"] == 0
    # The one tight quota was reached, and nothing else was refused.
    assert load["429"]["expected"] > 0 and load["429"]["unexpected"] == 0
    quality = results["quality"]
    assert quality["failed"] == [] and quality["documents"] == quality["pages"] == 30
    assert quality["questions"] == 6 and quality["chunks"] > 0
    # Every small-size question is answerable from what was ingested: a ranking that never
    # finds its pages (an ingestion or id-mapping regression) fails here.
    for row in (*quality["modes"].values(), *quality["baselines"].values()):
        assert row["recall_at_5"] > 0 and 0 < row["ndcg_at_10"] <= 1
    # Both moves finished under the writer and the reader: nothing refused, lost or failed.
    moves = results["tenant_move"]["sizes"]["2000"]["moves"]
    assert [m["state"] for m in moves.values()] == ["done", "done"]
    for m in moves.values():
        assert m["fence_ms"] is not None and m["writes"] > 0 and m["reads"] > 0
        assert m["failed_writes"] == m["failed_reads"] == m["writes_lost"] == 0
    assert json.loads((tmp_path / "results.json").read_text())["size"] == "small"
    report = (tmp_path / "report.md").read_text()
    headings = ("## Ingestion", "## Search", "## Answers", "## Noisy", "## API overhead", "## Load")
    headings += ("## Retrieval quality", "## Tenant moves")
    for heading in headings:
        assert heading in report


def test_the_peer_comparison_runs(pg):
    available, reason = peers.available()
    assert available, reason
    from benchmarks.common import query_vectors, synthetic_corpus
    from benchmarks.search import _measure_peer

    corpus = synthetic_corpus(300, seed=1)
    store = peers.PeerStore("bench_smoke_peer")
    try:
        assert store.add_texts(["a harbour", "a library"]) > 0
        store.add_vectors(corpus.texts, corpus.vectors, first=10)
        store.build_index()
        measured = _measure_peer(store, corpus.vectors, query_vectors(corpus, 15, seed=2), 5)
    finally:
        store.close()
    assert measured["vector"]["n"] == 5
