"""Load: a real HTTP load generator (Locust, benchmarks/load_driver.py, in a process of its
own) against a real gunicorn and Celery worker, from tenants in all three modes, sending a mix
of searches, answers and uploads at fixed rates.

A ladder of rising rates (short steps, stopped once search is far past its target), the same
ladder without answers (one generation takes both cores of a small machine for seconds, which
is most of what search's tail shows), then the stated rate for longer. Checked and reported:
latency percentiles per endpoint and step, 5xx (there must be none), 429s (only from a tenant
given a tight quota once its counter reached it, or from a tenant's concurrent-generation
limit while that many of its answers were in flight), and that every accepted upload ends
`ready`. The figure of merit is the highest offered rate at which search's p95 stays under
100 ms.

Everything runs on the one machine: the load generator takes its share of the cores too.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .answer import PLACES, THINGS, TOWNS, _documents, _questions
from .load_checks import QUOTA_OF, check_refusals, wait_ingested

ROOT = Path(__file__).resolve().parent.parent
MODES = ("pool", "bridge", "silo")
TARGET_SEARCH_P95_MS = 100
MIXED, NO_ANSWERS = "mixed", "no answers"  # the two ladders
LADDER_STOP_ABOVE_MS = 1000
UNLIMITED = 1_000_000
UPLOAD_TEXT = (
    "# Load note {tag}\n\nThe harbour ledger {tag} records the lanterns and maps that came in "
    "with the morning boats, and who borrowed them.\n\n## Returns\n\nEvery item comes back "
    "within a week; the clerk notes it in the ledger {tag}."
)


def bench_load(
    *,
    tenants: int,
    documents: int,
    rates: list[float],
    rates_without_answers: list[float],
    step_seconds: float,
    rate: float,
    seconds: float,
    answer_share: float,
    answer_max_rps: float,
    upload_share: float,
    answer_max_tokens: int,
    tight: dict[str, int],
) -> dict:
    mix = {
        "answer_share": answer_share,
        "answer_max_rps": answer_max_rps,
        "upload_share": upload_share,
    }
    quiet = {**mix, "answer_share": 0}
    steps = [
        {"name": f"{r:g} rps", "rates": _rates(r, **mix), "seconds": step_seconds, "ladder": MIXED}
        for r in rates
    ]
    steps += [
        {
            "name": f"{r:g} rps, no answers",
            "rates": _rates(r, **quiet),
            "seconds": step_seconds,
            "ladder": NO_ANSWERS,
        }
        for r in rates_without_answers
    ]
    steps.append({"name": "stated", "rates": _rates(rate, **mix), "seconds": seconds})
    clock = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        # Side by side: each of these spends its time loading models or waiting on PostgreSQL.
        provisioning = pool.submit(_provision, tenants, documents, tight)
        with _servers(pool) as server:
            population = provisioning.result()
            setup_s = {"provision_and_servers": round(time.perf_counter() - clock, 1)}
            clock = time.perf_counter()
            _warm(server.url, population)
            setup_s["warm"] = round(time.perf_counter() - clock, 1)
            driven = _drive(
                {
                    "host": server.url,
                    "tenants": [
                        {k: p[k] for k in ("slug", "key", "mode", "max_concurrent_generations")}
                        for p in population
                    ],
                    "steps": steps,
                    "queries": _queries(),
                    "questions": _questions(),
                    "answer_max_tokens": answer_max_tokens,
                    "upload_text": UPLOAD_TEXT,
                    "ladder_stop_above_ms": LADDER_STOP_ABOVE_MS,
                }
            )
            uploads = wait_ingested(population, driven["accepted"])
    refusals = check_refusals(population, driven)
    ran = [s for s in driven["steps"] if not s.get("skipped")]
    return {
        "tenants": len(population),
        "modes": {m: sum(p["mode"] == m for p in population) for m in MODES},
        "documents_per_tenant": documents,
        "mix": {**mix, "answer_max_tokens": answer_max_tokens},
        "tight_quotas": {p["slug"]: p["tight"] for p in population if p["tight"]},
        "gunicorn": {"workers": 1, "threads": 8},
        "steps": driven["steps"],
        "stated": next(s for s in driven["steps"] if s["name"] == "stated"),
        "target_search_p95_ms": TARGET_SEARCH_P95_MS,
        "highest_rps_search_p95_under_target": _highest(ran, {MIXED, None}),
        "highest_rps_without_answers": _highest(ran, {NO_ANSWERS}),
        "5xx": sum(s["5xx"] for s in ran),
        "errors": sum(s["errors"] for s in ran),
        "429": refusals,
        "uploads": uploads,
        "problems": driven["problems"],
        "setup_s": setup_s,
    }


def _highest(steps: list[dict], ladders: set) -> float | None:
    """The highest offered rate of these steps that search held: p95 under the target, and
    nothing failed or left unanswered. The stated run (no ladder) counts with the mixed one."""
    held = [
        s["offered_rps"]
        for s in steps
        if s.get("ladder") in ladders
        and s["latency_ms"].get("search", {}).get("p95", float("inf")) < TARGET_SEARCH_P95_MS
        and s["5xx"] == 0
        and s["errors"] == 0
        and s["unfinished"] == 0
    ]
    return max(held) if held else None


def _rates(
    rate: float, *, answer_share: float, answer_max_rps: float, upload_share: float
) -> dict[str, float]:
    """Requests per second per endpoint. Answers are capped: one model generates for every
    tenant of the process, a few per second at most on 2 cores, and beyond that the queue
    would answer 503 `generator_busy` by design, which says nothing about the rest."""
    answer = min(rate * answer_share, answer_max_rps)
    upload = rate * upload_share
    return {
        "search": round(rate - answer - upload, 3),
        "answer": round(answer, 3),
        "upload": round(upload, 3),
    }


def _queries() -> list[str]:
    words = [f"{place} {thing}" for place in PLACES for thing in THINGS]
    return words + [f"{town} {place} opening hours" for town in TOWNS for place in PLACES[:4]]


def _provision(count: int, documents: int, tight: dict[str, int]) -> list[dict]:
    """`count` tenants over the three modes, each with `documents` ingested documents and a key;
    every hourly quota out of the way except the `tight` ones, one tenant each. Runs in a
    thread of its own (while the servers start), so it closes that thread's connections."""
    from django.db import connections

    try:
        return _provision_tenants(count, documents, tight)
    finally:
        connections.close_all()


def _provision_tenants(count: int, documents: int, tight: dict[str, int]) -> list[dict]:
    from rag.services.documents import document_submit
    from rag.services.ingest import document_ingest
    from tenants.services.apikeys import apikey_create
    from tenants.services.provisioning import tenant_create
    from tenants.services.quotas import quota_get, quota_set

    stamp = int(time.time())
    tight_items = list(tight.items())
    population = []
    for i in range(count):
        mode = MODES[i % len(MODES)]
        tenant = tenant_create(slug=f"bench-load-{stamp}-{i}", mode=mode)
        for text in _documents(documents, seed=100 + i):
            submission = document_submit(tenant=tenant, data=text.encode(), enqueue=False)
            document_ingest(tenant=tenant, document_id=submission.document.id)
        own = dict([tight_items[i]]) if i < len(tight_items) else {}
        quota_set(tenant=tenant, **{**dict.fromkeys(QUOTA_OF.values(), UNLIMITED), **own})
        _, key = apikey_create(tenant=tenant, scopes=["query", "ingest"])
        population.append(
            {
                "tenant": tenant,
                "slug": tenant.slug,
                "mode": mode,
                "key": key,
                "tight": own,
                "max_concurrent_generations": quota_get(tenant=tenant).max_concurrent_generations,
            }
        )
    return population


@contextlib.contextmanager
def _servers(pool: ThreadPoolExecutor):
    """A Celery worker (benchmarks/worker.py) and gunicorn as `make run` starts it
    (platform/gunicorn.conf.py, one process of 8 threads), started side by side."""
    from benchmarks.worker import running_worker
    from tests.server import WebServer

    server = WebServer(
        Path(tempfile.mkdtemp(prefix="tenantry-bench-web-")), threads=8, collect_static=False
    )
    starting = pool.submit(server.start)
    try:
        with running_worker():
            starting.result()
            yield server
    finally:
        starting.exception()  # waits until it started or failed, so that it can be stopped
        server.stop()


def _post(url: str, key: str, body: dict, timeout: float = 300) -> int:
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return response.status


def _warm(url: str, population: list[dict]) -> None:
    """Models loaded and every tenant's store reached once before anything is timed (the tight
    tenants are left alone: their quotas must be spent by the load alone)."""
    loose = [p for p in population if not p["tight"]]
    _post(
        url + "/api/v1/answer",
        loose[0]["key"],
        {"question": "When does the harbour open?", "max_tokens": 2, "cache": False},
    )
    for p in loose:
        _post(url + "/api/v1/search", p["key"], {"query": "harbour lanterns", "k": 5})


def _drive(plan: dict) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tenantry-bench-load-"))
    (work / "plan.json").write_text(json.dumps(plan))
    budget = sum(s["seconds"] for s in plan["steps"]) + 180 * len(plan["steps"]) + 60
    subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.load_driver", work / "plan.json", work / "out.json"],
        cwd=ROOT,
        check=True,
        timeout=budget,
    )
    return json.loads((work / "out.json").read_text())
