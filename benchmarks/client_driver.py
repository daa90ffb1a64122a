"""HTTP clients of the `noisy` and `overhead` sections, each in a process of its own, against
a real gunicorn (the bench process drives them: benchmarks/api.py).

    python -m benchmarks.client_driver client HOST KEY
    python -m benchmarks.client_driver flood PLAN.json OUT.json

`client`: one request per line of stdin (`{"endpoint": "search", "body": {...}}`), sent when
the line arrives, one at a time on one kept-alive connection; one line of stdout per answer
(`{"status", "client_ms", "timings"}`). The bench process decides what to send and when (a
direct measurement between two requests, a pause), but the clock runs here, around the
request alone: the pipe is not timed.

`flood`: `concurrency` loops sending searches (every `answer_every`-th an answer) as fast as
the server answers them, until the bench process creates `stop_path`; the statuses counted.
It writes `ready_path` once every loop has had an answer, so that what is measured under the
flood starts under it.

Both use the load section's Locust client (benchmarks/load_driver.py): in a process apart from
the bench process, whose Django, psycopg and torch must not see gevent's monkey-patching, and
apart from the server, so that the client's CPU is not the server's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict

import gevent
from locust.env import Environment

from .load_driver import ENDPOINTS, tenant_user  # monkey-patches sockets, threads and ssl


def _post(user, key: str, endpoint: str, body: dict) -> tuple[int, float, dict]:
    """(status, client milliseconds, the body's `timings` if it answered 200)."""
    started = time.perf_counter()
    with user.client.post(
        ENDPOINTS[endpoint],
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        name=endpoint,
        catch_response=True,
    ) as response:
        elapsed = (time.perf_counter() - started) * 1000  # the body is read by then
        status = response.status_code or 0  # 0: no response (connection error)
        timings = {}
        if status == 200:
            timings = response.json().get("timings", {})
        response.success()  # statuses are the caller's business, not Locust's
    return status, elapsed, timings


def client(host: str, key: str) -> int:
    user = tenant_user(Environment(user_classes=[], host=host), host)
    for line in sys.stdin:
        if not line.strip():
            continue
        ask = json.loads(line)
        status, elapsed, timings = _post(user, key, ask["endpoint"], ask["body"])
        sys.stdout.write(
            json.dumps({"status": status, "client_ms": elapsed, "timings": timings}) + "\n"
        )
        sys.stdout.flush()
    return 0


def flood(plan_path: str, out_path: str) -> int:
    with open(plan_path) as f:
        plan = json.load(f)
    host, key = plan["host"], plan["key"]
    env = Environment(user_classes=[], host=host)
    statuses: dict = defaultdict(Counter)
    answered: set[int] = set()
    deadline = time.monotonic() + plan.get("max_s", 600)

    def stopped() -> bool:
        return os.path.exists(plan["stop_path"]) or time.monotonic() > deadline

    def loop(worker: int) -> None:
        user = tenant_user(env, host)  # a connection of its own, as a thread of a client
        queries = plan["queries"]
        i = worker  # the loops start at different points of the query list
        while not stopped():
            q = queries[i % len(queries)]
            if plan["answer_every"] and i % plan["answer_every"] == 0:
                endpoint = "answer"
                body = {"question": q, "k": 5, "max_tokens": plan["answer_max_tokens"]}
                body["cache"] = False  # each one a generation (if the quota lets it through)
            else:
                endpoint, body = "search", {"query": q, "k": 10, "mode": "hybrid"}
            status, _, _ = _post(user, key, endpoint, body)
            statuses[endpoint][str(status)] += 1
            answered.add(worker)
            if len(answered) == plan["concurrency"] and not os.path.exists(plan["ready_path"]):
                open(plan["ready_path"], "w").close()
            i += plan["concurrency"]

    started = time.perf_counter()
    loops = [gevent.spawn(loop, w) for w in range(plan["concurrency"])]
    gevent.joinall(loops)
    seconds = time.perf_counter() - started
    errors = [str(g.exception) for g in loops if g.exception is not None]
    flat = Counter()
    for c in statuses.values():
        flat.update(c)
    result = {
        "statuses": {e: dict(c) for e, c in statuses.items()},
        "requests": sum(flat.values()),
        "ok": sum(n for s, n in flat.items() if s.startswith("2")),
        "refused": flat.get("429", 0),
        "other": sum(n for s, n in flat.items() if not s.startswith("2") and s != "429"),
        "seconds": round(seconds, 2),
        "requests_per_s": round(sum(flat.values()) / seconds, 1) if seconds else 0,
        "errors": errors,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    sys.exit({"client": client, "flood": flood}[command](*args))
