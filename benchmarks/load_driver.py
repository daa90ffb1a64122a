"""The load generator of the `load` section: Locust's FastHttpUser, one per tenant, sending
search, answer and upload requests to a real gunicorn at fixed rates.

    python -m benchmarks.load_driver PLAN.json OUT.json

It runs in a process of its own because importing Locust monkey-patches the standard library
for gevent (sockets, threads, ssl), which the bench process's Django, psycopg and torch must
not see. It imports nothing of the project: the plan carries the tenants' keys and the steps.

The schedule is open-loop: each request is sent at its planned time whether or not earlier
ones have been answered, so a slow server is measured as slow rather than sent fewer
requests (a closed loop of users waiting for their answers would hide it). Latency
percentiles are of the answered (2xx) requests; refusals and errors are counted by status.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from collections import Counter, defaultdict

import gevent
from locust import FastHttpUser  # monkey-patches sockets, threads and ssl for gevent
from locust.env import Environment

ENDPOINTS = {"search": "/api/v1/search", "answer": "/api/v1/answer", "upload": "/api/v1/documents"}


class TenantUser(FastHttpUser):
    """One tenant's client: its own keep-alive connections, as a tenant's application has.
    Its requests are fired by the schedule below, not by Locust's task loop."""

    abstract = True
    concurrency = 64  # connections: enough that the client never queues a request itself
    network_timeout = 120.0
    connection_timeout = 30.0


def tenant_user(env: Environment, host: str) -> TenantUser:
    """A client of its own (its own connection pool) to `host`."""
    return type("U", (TenantUser,), {"host": host})(env)


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(len(ordered) * p) - 1))], 1)

    return {"n": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99)}


class Load:
    def __init__(self, plan: dict):
        self.plan = plan
        self.rng = random.Random(plan.get("seed", 1))  # noqa: S311 - a reproducible mix
        self.env = Environment(user_classes=[], host=plan["host"])
        self.tenants = plan["tenants"]
        self.users = {}
        for t in self.tenants:
            self.users[t["slug"]] = tenant_user(self.env, plan["host"])
        self.in_flight: Counter = Counter()  # answers in flight per tenant, client side
        self.turns: Counter = Counter()
        self.by_tenant: dict = defaultdict(lambda: defaultdict(Counter))
        self.accepted: dict = defaultdict(list)
        self.refusals: Counter = Counter()  # (tenant, endpoint, kind) -> n
        self.unexplained_concurrent = 0
        self.problems: list[str] = []

    def request(self, endpoint: str, tenant: dict, step: dict) -> None:
        body = self._body(endpoint)
        headers = {"Authorization": f"Bearer {tenant['key']}"}
        slug = tenant["slug"]
        others = self.in_flight[slug]
        if endpoint == "answer":
            self.in_flight[slug] += 1
        started = time.perf_counter()
        try:
            with self.users[slug].client.post(
                ENDPOINTS[endpoint], json=body, headers=headers, name=endpoint, catch_response=True
            ) as response:
                status = response.status_code or 0  # 0: no response (connection error)
                elapsed = (time.perf_counter() - started) * 1000
                self._record(endpoint, tenant, step, status, elapsed, response, others)
                response.success()  # refusals and errors are counted here, not by Locust
        finally:
            if endpoint == "answer":
                self.in_flight[slug] -= 1

    def _body(self, endpoint: str) -> dict:
        plan = self.plan
        if endpoint == "search":
            return {"query": self.rng.choice(plan["queries"]), "k": 5, "mode": "hybrid"}
        if endpoint == "answer":
            return {
                "question": self.rng.choice(plan["questions"]),
                "k": 3,
                "max_tokens": plan["answer_max_tokens"],
                "cache": False,
            }
        tag = uuid.uuid4().hex
        return {"text": plan["upload_text"].replace("{tag}", tag), "title": f"load {tag[:8]}"}

    def _record(self, endpoint, tenant, step, status, elapsed, response, others) -> None:
        slug = tenant["slug"]
        step["statuses"][endpoint][str(status)] += 1
        self.by_tenant[slug][endpoint][str(status)] += 1
        if 200 <= status < 300:
            step["latencies"][endpoint].append(elapsed)
            if endpoint == "search":
                step["search_by_mode"][tenant["mode"]].append(elapsed)
            if endpoint == "upload" and status == 202:
                self.accepted[slug].append(response.json()["id"])
        elif status == 429:
            # An hourly limit answers with its RateLimit-Policy; the concurrent-generation
            # limit without one. The latter is checked here, where the in-flight answers of
            # the tenant are known: the server can only have fewer in flight than the client.
            if response.headers.get("RateLimit-Policy"):
                kind = "hourly"
            else:
                kind = "concurrent"
                if others < tenant["max_concurrent_generations"]:
                    self.unexplained_concurrent += 1
            self.refusals[(slug, endpoint, kind)] += 1
        elif len(self.problems) < 20:
            text = (response.text or str(response.error))[:300] if status else str(response.error)
            self.problems.append(f"{endpoint} {slug} {status}: {text}")

    def step(self, name: str, rates: dict, seconds: float) -> dict:
        step = {
            "name": name,
            "offered_rps": round(sum(rates.values()), 2),
            "rates": rates,
            "seconds": seconds,
            "statuses": defaultdict(Counter),
            "latencies": defaultdict(list),
            "search_by_mode": defaultdict(list),
        }
        schedule = []
        for endpoint, rate in rates.items():
            if rate <= 0:
                continue
            phase = self.rng.random()
            i = 0
            while (i + phase) / rate < seconds:
                schedule.append(((i + phase) / rate, endpoint))
                i += 1
        schedule.sort()
        greenlets = []
        started = time.perf_counter()
        for at, endpoint in schedule:
            delay = at - (time.perf_counter() - started)
            if delay > 0:
                gevent.sleep(delay)
            # Round robin per endpoint: every tenant gets its share, so the tight quotas are
            # certain to be reached rather than likely.
            tenant = self.tenants[self.turns[endpoint] % len(self.tenants)]
            self.turns[endpoint] += 1
            greenlets.append(gevent.spawn(self.request, endpoint, tenant, step))
        sent_s = time.perf_counter() - started
        gevent.joinall(greenlets, timeout=self.plan.get("drain_s", 180))
        step["unfinished"] = sum(1 for g in greenlets if not g.dead)
        step["send_lag_s"] = round(sent_s - seconds, 2) if schedule else 0
        step["wall_s"] = round(time.perf_counter() - started, 1)
        return self._summarise(step)

    @staticmethod
    def _summarise(step: dict) -> dict:
        statuses = step.pop("statuses")
        step["statuses"] = {e: dict(c) for e, c in statuses.items()}
        step["latency_ms"] = {e: percentiles(v) for e, v in step.pop("latencies").items()}
        step["search_by_mode_ms"] = {
            m: percentiles(v) for m, v in sorted(step.pop("search_by_mode").items())
        }
        flat = Counter()
        for c in statuses.values():
            flat.update(c)
        step["5xx"] = sum(n for s, n in flat.items() if s.startswith("5"))
        step["429"] = flat.get("429", 0)
        step["errors"] = flat.get("0", 0)
        step["requests"] = sum(flat.values())
        return step


def main(plan_path: str, out_path: str) -> int:
    with open(plan_path) as f:
        plan = json.load(f)
    load = Load(plan)
    steps, past_target = [], set()
    for spec in plan["steps"]:
        offered = round(sum(spec["rates"].values()), 2)
        ladder = spec.get("ladder")
        if ladder in past_target:
            # A ladder goes no higher once search is far past its target: the rest would only
            # queue up. The stated-rate run comes regardless.
            steps.append({"name": spec["name"], "offered_rps": offered, "skipped": True})
            continue
        step = load.step(spec["name"], spec["rates"], spec["seconds"])
        step["ladder"] = ladder
        steps.append(step)
        search = step["latency_ms"].get("search", {})
        if ladder and search.get("p95", 0) > plan["ladder_stop_above_ms"]:
            past_target.add(ladder)
        print(
            f"load {step['name']}: {offered} rps offered, search p95 {search.get('p95')} ms, "
            f"5xx {step['5xx']}, 429 {step['429']}, errors {step['errors']}",
            flush=True,
        )
    result = {
        "steps": steps,
        "by_tenant": {s: {e: dict(c) for e, c in d.items()} for s, d in load.by_tenant.items()},
        "accepted": dict(load.accepted),
        "refusals": [
            {"tenant": t, "endpoint": e, "kind": k, "count": n}
            for (t, e, k), n in sorted(load.refusals.items())
        ],
        "unexplained_concurrent_429": load.unexplained_concurrent,
        "problems": load.problems,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
