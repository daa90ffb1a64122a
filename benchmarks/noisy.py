"""Noisy neighbour: tenant A floods searches (and answers) far above its rate limit from
several threads while tenant B runs a steady search load; B's latency against B alone.

Both go through the in-process API client in this one process, as threads of one web worker
would: A's refusals (429) must stay cheap, and the few answers A is allowed must not starve B.
"""

from __future__ import annotations

import threading
import time

from django.db import connections

from tenants.services.quotas import quota_set

from .api import ApiClient, tenant_with_data
from .common import query_texts, summary


def _steady(client: ApiClient, queries: list[str], pause_s: float) -> list[float]:
    times = []
    for q in queries:
        status, elapsed, _ = client.search(q, mode="hybrid")
        if status != 200:
            raise RuntimeError(f"tenant B was refused: {status}")
        times.append(elapsed)
        time.sleep(pause_s)
    return times


def bench_noisy(*, chunks: int, queries: int, flooders: int, answers: bool) -> dict:
    stamp = int(time.time())
    a_tenant, a_key = tenant_with_data(f"bench-noisy-a-{stamp}", chunks, seed=41)
    _, b_key = tenant_with_data(f"bench-noisy-b-{stamp}", chunks, seed=42)
    quota_set(tenant=a_tenant, search_per_hour=50, answer_per_hour=3)
    b = ApiClient(b_key)
    _steady(b, query_texts(10, seed=43), 0)  # warm
    b_queries = query_texts(queries, seed=44)
    alone = _steady(b, b_queries, 0.02)

    stop = threading.Event()
    counts = {"ok": 0, "refused": 0, "other": 0}
    lock = threading.Lock()

    def flood(worker: int) -> None:
        client = ApiClient(a_key)
        qs = query_texts(200, seed=100 + worker)
        i = 0
        try:
            while not stop.is_set():
                if answers and i % 10 == 0:
                    status = client.answer(qs[i % len(qs)])
                else:
                    status, _, _ = client.search(qs[i % len(qs)], mode="hybrid")
                i += 1
                with lock:
                    key = "ok" if status == 200 else "refused" if status == 429 else "other"
                    counts[key] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flood, args=(w,), daemon=True) for w in range(flooders)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(0.5)
    try:
        contended = _steady(b, b_queries, 0.02)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=300)
    seconds = time.perf_counter() - started
    alone_s, contended_s = summary(alone), summary(contended)
    return {
        "chunks_per_tenant": chunks,
        "a_limits": {"search_per_hour": 50, "answer_per_hour": 3},
        "a_threads": flooders,
        "a_requests": dict(counts),
        "a_requests_per_s": round(sum(counts.values()) / seconds, 1),
        "b_alone_ms": alone_s,
        "b_with_a_flooding_ms": contended_s,
        "b_p95_ratio": round(contended_s["p95"] / alone_s["p95"], 2),
    }
