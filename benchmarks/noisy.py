"""Noisy neighbour: tenant A floods searches (and answers) far above its rate limit while
tenant B runs a steady search load; B's latency against B alone.

On a real gunicorn (one process, as `make run` starts it), each tenant's client in a process of
its own: A's flood of concurrent loops (benchmarks/client_driver.py `flood`), B's steady
client (`client`). A's refusals (429) must stay cheap, and the few answers A is allowed must
not starve B. B's client milliseconds and the server's own search time (`timings.total_ms`)
are reported side by side: the first is what B's application sees, the second excludes
queueing for a thread and HTTP.
"""

from __future__ import annotations

import time

from tenants.services.quotas import quota_set

from .api import HttpClient, flooding, server_description, serving, tenant_with_data
from .common import query_texts, summary

A_LIMITS = {"search_per_hour": 50, "answer_per_hour": 3}


def _steady(client: HttpClient, queries: list[str], pause_s: float) -> tuple[list, list]:
    """B's searches one after another: (client ms, server total ms) of each."""
    wall, server = [], []
    for q in queries:
        status, elapsed, timings = client.search(q, mode="hybrid")
        if status != 200:
            raise RuntimeError(f"tenant B was refused: {status}")
        wall.append(elapsed)
        server.append(timings["total_ms"])
        time.sleep(pause_s)
    return wall, server


def bench_noisy(*, chunks: int, queries: int, flooders: int, answers: bool) -> dict:
    stamp = int(time.time())
    a_tenant, a_key = tenant_with_data(f"bench-noisy-a-{stamp}", chunks, seed=41)
    _, b_key = tenant_with_data(f"bench-noisy-b-{stamp}", chunks, seed=42)
    quota_set(tenant=a_tenant, **A_LIMITS)
    b_queries = query_texts(queries, seed=44)
    # Relevance declines off: A's answers let through are generated, not turned down unrun
    # (its questions are pseudo-words), so that they cost what an answer costs.
    settings = {"ANSWER_DECLINE": "false"} if answers else {}
    with serving(**settings) as web, HttpClient(web.url, b_key) as b:
        _steady(b, query_texts(10, seed=43), 0)  # warm
        alone, alone_server = _steady(b, b_queries, 0.02)
        with flooding(
            web.url,
            a_key,
            concurrency=flooders,
            queries=query_texts(200, seed=100),
            answers=answers,
        ) as flood:
            time.sleep(0.5)
            contended, contended_server = _steady(b, b_queries, 0.02)
    alone_s, contended_s = summary(alone), summary(contended)
    alone_server_s, contended_server_s = summary(alone_server), summary(contended_server)
    return {
        "chunks_per_tenant": chunks,
        "server": server_description(),
        "a_limits": A_LIMITS,
        "a_concurrency": flooders,
        "a_answers": answers,
        "a_requests": {k: flood[k] for k in ("ok", "refused", "other")},
        "a_statuses": flood["statuses"],
        "a_requests_per_s": flood["requests_per_s"],
        "b_alone_ms": alone_s,
        "b_with_a_flooding_ms": contended_s,
        "b_alone_server_ms": alone_server_s,
        "b_with_a_flooding_server_ms": contended_server_s,
        "b_p95_ratio": round(contended_s["p95"] / alone_s["p95"], 2),
        "b_server_p95_ratio": round(contended_server_s["p95"] / alone_server_s["p95"], 2),
    }
