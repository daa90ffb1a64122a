"""Search: server latency (p50/p95, without the query embedding) and recall@10 against exact
search, at growing corpus sizes, in pool (many tenants of skewed sizes), bridge and silo, and
the same queries through langchain-postgres holding the same data.

At each size N: the pool holds N chunks over `tenants` tenants, one of them ("big") half of
them and the rest Zipf-distributed down to a few chunks each; the bridge tenant, the silo
tenant and the peer table each hold the big tenant's N/2 chunks (the very same vectors). Each
size adds rows to the previous one's, with the HNSW indexes rebuilt around the load.
"""

from __future__ import annotations

import time

import numpy as np

from rag.services.search import chunk_search
from tenants.services.provisioning import tenant_create

from . import peers
from .common import query_texts, query_vectors, summary, synthetic_corpus
from .store import IndexPaused, exact_top, load_chunks, prefill_query_vectors, recall

MODES = ("vector", "keyword", "hybrid")


def pool_shares(total: int, tenants: int) -> list[int]:
    """Chunks per pool tenant: the first holds half, the others a Zipf share of the rest."""
    big = total // 2
    weights = 1.0 / np.arange(1, tenants) ** 1.3
    rest = np.maximum(1, np.floor(weights / weights.sum() * (total - big))).astype(int)
    rest[0] += (total - big) - int(rest.sum())
    return [big, *(int(x) for x in rest)]


def bench_search(*, sizes: list[int], tenants: int, queries: int, peer: bool = True) -> dict:
    stamp = int(time.time())
    big_max = max(sizes) // 2
    corpus = synthetic_corpus(big_max, seed=11)
    pool = [tenant_create(slug=f"bs-pool-{stamp}-{i}", mode="pool") for i in range(tenants)]
    bridge = tenant_create(slug=f"bs-bridge-{stamp}", mode="bridge")
    silo = tenant_create(slug=f"bs-silo-{stamp}", mode="silo")
    small = pool[len(pool) // 2]  # a typical tiny tenant beside the big one
    peer_ok, peer_reason = peers.available() if peer else (False, "disabled")
    store = peers.PeerStore(f"bench_peer_{stamp}") if peer_ok else None

    texts = query_texts(queries + 10, seed=21)
    vectors = query_vectors(corpus, queries + 10, seed=22)
    for tenant in (pool[0], small, bridge, silo):
        prefill_query_vectors(tenant, texts, vectors)

    loaded = [0] * tenants
    big_loaded = 0
    out: dict = {"sizes": {}, "tenants": tenants, "queries": queries}
    if not peer_ok:
        out["peer_skipped"] = peer_reason
    try:
        for size in sizes:
            shares = pool_shares(size, tenants)
            target = shares[0]
            started = time.perf_counter()
            with IndexPaused(pool[0]):
                for i, tenant in enumerate(pool):
                    if i == 0:
                        part = slice(big_loaded, target)
                        load_chunks(
                            tenant,
                            corpus.texts[part],
                            corpus.vectors[part],
                            first_ordinal=big_loaded,
                        )
                    elif shares[i] > loaded[i]:
                        extra = synthetic_corpus(shares[i] - loaded[i], seed=1000 * i + size)
                        load_chunks(tenant, extra.texts, extra.vectors, first_ordinal=loaded[i])
                    loaded[i] = max(loaded[i], shares[i])
            load = {"pool": round(time.perf_counter() - started, 1)}
            part = slice(big_loaded, target)
            for name, tenant in (("bridge", bridge), ("silo", silo)):
                started = time.perf_counter()
                with IndexPaused(tenant):
                    load_chunks(
                        tenant, corpus.texts[part], corpus.vectors[part], first_ordinal=big_loaded
                    )
                load[name] = round(time.perf_counter() - started, 1)
            if store is not None:
                started = time.perf_counter()
                if big_loaded:
                    store.drop_index()
                store.add_vectors(corpus.texts[part], corpus.vectors[part], first=big_loaded)
                store.build_index()
                load["peer"] = round(time.perf_counter() - started, 1)
            big_loaded = target

            result: dict = {"big_tenant_chunks": target, "load_s": load, "placements": {}}
            for name, tenant in (
                ("pool", pool[0]),
                ("pool_small_tenant", small),
                ("bridge", bridge),
                ("silo", silo),
            ):
                result["placements"][name] = _measure(tenant, texts, vectors, queries)
            result["placements"]["pool_small_tenant"]["chunks"] = loaded[len(pool) // 2]
            if store is not None:
                result["placements"]["langchain_postgres"] = _measure_peer(
                    store, corpus.vectors[:target], vectors, queries
                )
            out["sizes"][str(size)] = result
            print(f"search {size}: {result}", flush=True)
    finally:
        if store is not None:
            store.close()
    return out


def _measure(tenant, texts: list[str], vectors: np.ndarray, queries: int) -> dict:
    warm, measured = texts[:10], texts[10 : 10 + queries]
    for q in warm:  # cold pages and first-use costs
        for mode in MODES:
            chunk_search(tenant=tenant, query=q, k=10, mode=mode, observe=False)
    result: dict = {}
    for mode in MODES:
        times = [
            chunk_search(tenant=tenant, query=q, k=10, mode=mode, observe=False).timings[
                "search_ms"
            ]
            for q in measured
        ]
        result[mode] = summary(times)
    recalls = []
    for q, v in zip(measured, vectors[10 : 10 + queries], strict=True):
        hits = chunk_search(tenant=tenant, query=q, k=10, mode="vector", observe=False).hits
        recalls.append(recall([h.chunk_id for h in hits], exact_top(tenant, v)))
    result["recall_at_10"] = round(float(np.mean(recalls)), 4)
    return result


def _measure_peer(store, data: np.ndarray, vectors: np.ndarray, queries: int) -> dict:
    for v in vectors[:10]:
        store.search(v)
    times, recalls = [], []
    for v in vectors[10 : 10 + queries]:
        found, elapsed = store.search(v)
        times.append(elapsed)
        truth = np.argsort(-(data @ v), kind="stable")[:10]
        recalls.append(recall(found, [int(i) for i in truth]))
    return {"vector": summary(times), "recall_at_10": round(float(np.mean(recalls)), 4)}
