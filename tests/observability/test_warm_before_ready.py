"""Warm before ready (rag/warmup.py): a web process says it is ready only once its models are
loaded, and every web and worker process leaves a marker that `make run` waits for
(tests/test_make_run.py checks the launcher's side)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.test import Client

from rag import warmup


def _marker(directory, role, pid, *, expected=1, state="warm", detail=""):
    path = directory / f"{role}-{pid}.json"
    path.write_text(
        json.dumps(
            {"role": role, "pid": pid, "expected": expected, "state": state, "detail": detail}
        )
    )
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.unit
def test_all_warm_waits_for_every_live_process_of_each_role(tmp_path):
    assert warmup.all_warm(tmp_path)[0] == warmup.WARMING  # nothing has started yet
    _marker(tmp_path, "web", os.getpid())
    _marker(tmp_path, "worker", os.getppid(), expected=2)
    state, detail = warmup.all_warm(tmp_path)
    assert (state, detail) == (warmup.WARMING, "worker: 1 of 2 processes warm")
    # A marker of a process that has exited does not count (a restarted one warms again).
    _marker(tmp_path, "worker", _dead_pid(), expected=2)
    assert warmup.all_warm(tmp_path)[0] == warmup.WARMING
    (tmp_path / "junk.json").write_text("{not json")
    _marker(tmp_path, "worker", 1, expected=2)  # init: alive
    assert warmup.all_warm(tmp_path) == (warmup.WARM, "all warm")


@pytest.mark.unit
def test_all_warm_names_a_process_whose_models_failed_to_load(tmp_path):
    _marker(tmp_path, "web", os.getpid(), state="failed", detail="OSError: no weights")
    state, detail = warmup.all_warm(tmp_path)
    assert state == warmup.FAILED and "OSError: no weights" in detail and str(os.getpid()) in detail


@pytest.fixture
def warm_state():
    from observability import health

    before = warmup.state()
    health.clear_cache()
    yield
    warmup._set(*before)
    health.clear_cache()


@pytest.mark.parametrize(
    ("state", "status", "detail"),
    [
        (warmup.WARMING, 503, "failed"),
        (warmup.FAILED, 503, "failed"),
        (warmup.WARM, 200, "warm"),
        (warmup.COLD, 200, "loads on first use"),
    ],
)
def test_readyz_follows_this_process_warm_state(pg, warm_state, state, status, detail):
    warmup._set(state, "embedding model")
    response = Client().get("/readyz")
    assert response.status_code == status, response.content
    assert response.json()["checks"]["models_warm"] == detail


def _readyz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_gunicorn_is_ready_only_with_its_models_loaded(django_db_setup, tmp_path):
    """From the first probe the server answers until it is ready: never 200 while a model
    is still loading, then 200 for good, with the worker's marker saying warm."""
    from tests.helpers import service_env
    from tests.server import WebServer

    warm_dir = tmp_path / "warm"
    server = WebServer(tmp_path, env=service_env(WARM_DIR=str(warm_dir)), collect_static=False)
    server.start()
    try:
        seen = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status, body = _readyz(server.url)
            seen.append(status)
            if status == 200:
                break
            time.sleep(0.05)
        assert seen[-1] == 200, body
        assert set(seen[:-1]) <= {503}, seen
        checks = body["checks"]
        assert checks["models_warm"] == "warm", body
        assert checks["embedding_model"] == "loaded" and checks["generator"] == "loaded", body
        assert [_readyz(server.url)[0] for _ in range(3)] == [200, 200, 200]
        (marker,) = warm_dir.glob("web-*.json")
        content = json.loads(marker.read_text())
        assert content["state"] == "warm" and content["expected"] == 1
        assert content["pid"] != server.proc.pid  # the serving process, not gunicorn's master
        assert warmup.all_warm(warm_dir, roles=("web",))[0] == warmup.WARM
    finally:
        server.stop()


@pytest.mark.worker
def test_every_worker_process_leaves_its_warm_marker(worker, settings):
    from tests.helpers import wait_until

    wait_until(
        lambda: warmup.all_warm(settings.WARM_DIR, roles=("worker",))[0] == warmup.WARM,
        timeout=120,
        message="the worker's processes never said warm",
    )


def test_a_ready_web_process_serves_from_connections_opened_before_ready(
    make_tenant, make_key, tmp_path
):
    """Its threads share pooled connections (tenants/pools.py), all opened while it warmed:
    concurrent searches after /readyz said 200 open none, so a first request pays for none."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import bearer, service_env, wait_until
    from tests.rag.chunks import fill_chunks
    from tests.server import WebServer

    tenant = make_tenant("pool")
    fill_chunks(tenant, 20, seed=5)
    key = make_key(tenant, scopes=["query"])
    threads = 4
    warm_dir = tmp_path / "warm"
    server = WebServer(
        tmp_path, threads=threads, env=service_env(WARM_DIR=str(warm_dir)), collect_static=False
    )
    server.start()
    try:
        wait_until(lambda: _readyz(server.url)[0] == 200, timeout=180, message="never ready")
        (marker,) = warm_dir.glob("web-*.json")
        name = f"tenantry-web-{json.loads(marker.read_text())['pid']}"
        ready = _web_backends(name)

        def search(n: int) -> int:
            request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
                server.url + "/api/v1/search",
                data=json.dumps({"query": f"passage {n}", "mode": "hybrid"}).encode(),
                headers={"Content-Type": "application/json", **_headers(bearer(key))},
            )
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status

        with ThreadPoolExecutor(threads * 2) as pool:
            assert set(pool.map(search, range(threads * 6))) == {200}
        # default and metering, one connection per thread each, and the very same ones after.
        assert len(ready) == 2 * threads
        assert _web_backends(name) == ready
    finally:
        server.stop()


def _web_backends(name: str) -> set[int]:
    """Server process ids of one web process's connections (named `name`)."""
    from tests.helpers import connect

    with connect("owner") as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchall()
    return {pid for (pid,) in rows}


def _headers(django_style: dict) -> dict:
    """`bearer()`'s HTTP_AUTHORIZATION as a header name urllib sends."""
    return {"Authorization": django_style["HTTP_AUTHORIZATION"]}
