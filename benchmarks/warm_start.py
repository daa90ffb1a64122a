"""Warm before ready: the first search after a (re)start against the median of the ones after.

The server is started as `make run` starts it and waited for as `make run` waits (every
process's warm marker, then /readyz 200; rag/warmup.py), then searched over HTTP with
questions it has never seen (no cached embedding). A first search that pays for a model load
shows up as a ratio far over 1 (11.4 s against about 20 ms before this existed).
"""

from __future__ import annotations

import json
import tempfile
import time
import urllib.request
from pathlib import Path

from .api import tenant_with_data
from .common import query_texts, summary


def _search(url: str, key: str, query: str) -> tuple[float, float]:
    """(client ms, server total ms) of one hybrid search."""
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        url + "/api/v1/search",
        data=json.dumps({"query": query, "k": 10, "mode": "hybrid"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        body = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, body["timings"]["total_ms"]


def _wait_ready(server, warm_dir: Path, timeout: float = 300) -> float:
    """Seconds until the web process's warm marker is there and /readyz answers 200."""
    from rag.warmup import WARM, all_warm
    from tests.helpers import wait_until

    def ready() -> bool:
        if all_warm(warm_dir, roles=("web",))[0] != WARM:
            return False
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=5):  # noqa: S310
                return True
        except OSError:
            return False

    started = time.monotonic()
    wait_until(ready, timeout=timeout, interval=0.1, message="the web server never became ready")
    return time.monotonic() - started


def bench_warm_start(*, chunks: int, restarts: int, searches: int) -> dict:
    from tests.helpers import service_env
    from tests.server import WebServer

    _tenant, key = tenant_with_data(f"bench-warm-{int(time.time())}", chunks, seed=41)
    queries = iter(query_texts(restarts * (searches + 1), seed=42))
    runs = []
    for _ in range(restarts):
        log_dir = Path(tempfile.mkdtemp(prefix="tenantry-bench-warm-"))
        env = service_env(WARM_DIR=str(log_dir / "warm"))
        server = WebServer(log_dir, threads=8, env=env, collect_static=False)
        server.start()
        try:
            ready_s = _wait_ready(server, log_dir / "warm")
            first_ms, first_server_ms = _search(server.url, key, next(queries))
            rest = [_search(server.url, key, next(queries)) for _ in range(searches)]
        finally:
            server.stop()
        later = summary([client for client, _ in rest])
        runs.append(
            {
                "ready_after_start_s": round(ready_s, 2),
                "first_ms": round(first_ms, 1),
                "first_server_ms": round(first_server_ms, 1),
                "later_client_ms": later,
                "later_server_ms": summary([server_ms for _, server_ms in rest]),
                "first_over_median": round(first_ms / later["p50"], 2),
            }
        )
    return {
        "chunks": chunks,
        "server": "gunicorn (platform/gunicorn.conf.py, 1 process, 8 threads), loopback HTTP",
        "restarts": runs,
        "worst_first_over_median": max(r["first_over_median"] for r in runs),
    }


def markdown(r: dict) -> list[str]:
    lines = [
        "## Warm start",
        "",
        f"{r['server']}, restarted {len(r['restarts'])} times and waited for as `make run` "
        "waits (every process's warm marker, then `/readyz` 200). Then one hybrid search "
        f"(k=10, a question never seen) and {r['restarts'][0]['later_client_ms']['n']} more; "
        f"{r['chunks']} chunks. Client ms over HTTP; server ms from the response's timings.",
        "",
        "| restart | ready after s | first ms (client) | first ms (server) | "
        "later p50 ms (client) | later p50 ms (server) | first / median |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, run in enumerate(r["restarts"], 1):
        lines.append(
            f"| {i} | {run['ready_after_start_s']} | {run['first_ms']} | "
            f"{run['first_server_ms']} | {run['later_client_ms']['p50']} | "
            f"{run['later_server_ms']['p50']} | {run['first_over_median']} |"
        )
    lines += ["", f"Worst first / median: **{r['worst_first_over_median']}**.", ""]
    return lines
