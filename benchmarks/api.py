"""The API as a tenant's application meets it, for the `noisy` and `overhead` sections: a real
gunicorn (tests/server.py, platform/gunicorn.conf.py, as `make run` starts it), and HTTP
clients in processes of their own (benchmarks/client_driver.py) driven from here.

Client times are taken in the client process, around the request; the server's own times come
in the response's `timings` (the search service: query embedding plus retrieval). The two
side by side say what HTTP, middleware, authentication, quota, serialisation and metering
add, and what is the search itself.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tenants.services.apikeys import apikey_create
from tenants.services.provisioning import tenant_create

from .common import synthetic_corpus
from .store import load_chunks

ROOT = Path(__file__).resolve().parent.parent
THREADS = 8  # gunicorn's threads, as platform/gunicorn.conf.py has them by default


def tenant_with_data(slug: str, chunks: int, seed: int):
    tenant = tenant_create(slug=slug, mode="pool")
    corpus = synthetic_corpus(chunks, seed=seed)
    load_chunks(tenant, corpus.texts, corpus.vectors)
    _, key = apikey_create(tenant=tenant, scopes=["query"])
    return tenant, key


def server_description() -> str:
    return f"gunicorn (platform/gunicorn.conf.py, 1 process, {THREADS} threads), loopback HTTP"


@contextlib.contextmanager
def serving(**env: str):
    """A gunicorn on a free loopback port for the duration (`env`: settings of its own)."""
    from tests.helpers import service_env
    from tests.server import WebServer

    server = WebServer(
        Path(tempfile.mkdtemp(prefix="tenantry-bench-api-")),
        threads=THREADS,
        env=service_env(**env),
        collect_static=False,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _driver(*args) -> list:
    return [sys.executable, "-m", "benchmarks.client_driver", *map(str, args)]


class HttpClient:
    """One client process (`client_driver client`) with one kept-alive connection."""

    def __init__(self, url: str, key: str):
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            _driver("client", url, key),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ask(self, endpoint: str, body: dict) -> dict:
        self.proc.stdin.write(json.dumps({"endpoint": endpoint, "body": body}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the client process ended ({self.proc.wait()})")
        return json.loads(line)

    def search(self, query: str, mode: str = "vector", k: int = 10) -> tuple[int, float, dict]:
        """(status, client milliseconds, server timings)."""
        reply = self._ask("search", {"query": query, "k": k, "mode": mode})
        return reply["status"], reply["client_ms"], reply["timings"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def flooding(url: str, key: str, *, concurrency: int, queries: list[str], answers: bool):
    """A tenant's flood from a process of its own (`client_driver flood`): `concurrency` loops
    of searches, every tenth an answer if `answers`, as fast as the server answers. Entered
    once every loop has had an answer; yields the dict its counts land in on exit."""
    work = Path(tempfile.mkdtemp(prefix="tenantry-bench-flood-"))
    plan = {
        "host": url,
        "key": key,
        "concurrency": concurrency,
        "queries": queries,
        "answer_every": 10 if answers else 0,
        "answer_max_tokens": 32,
        "ready_path": str(work / "ready"),
        "stop_path": str(work / "stop"),
    }
    (work / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.Popen(_driver("flood", work / "plan.json", work / "out.json"), cwd=ROOT)  # noqa: S603
    counts: dict = {}
    try:
        deadline = time.monotonic() + 120
        while not (work / "ready").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the flood did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield counts
    finally:
        (work / "stop").touch()
        try:
            # In-flight requests finish first: an answer may take a while to generate.
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the flood process failed ({proc.returncode})")
    counts.update(json.loads((work / "out.json").read_text()))
    if counts["errors"]:
        raise RuntimeError(f"the flood failed: {counts['errors'][:3]}")
