"""`make run`'s launcher on an empty DATA_DIR: serves the console and the demo tenant's API,
stops every process on Ctrl-C, and keeps the data for the next start."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "OWNER_DATABASE_URL", "REDIS_URL"}
    }
    env.update(DATA_DIR=str(data_dir), PORT=str(port), DJANGO_SETTINGS_MODULE="config.settings")
    env.update(extra)
    return env


def _start(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    env = _launcher_env(data_dir, port)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "platform" / "run.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError("launcher exited:\n" + "".join(output))
        output.append(line)
        if "Tenantry is running" in line:
            break
    text = "".join(output)
    # Each step says what it does, so a slow first start never looks like a hang.
    for step in STEPS:
        assert f"==> {step}" in text, text
    key = re.search(r"Demo key: (tnt_\S+)", text).group(1)
    _wait_http(f"http://127.0.0.1:{port}/console/login/")
    return proc, key


STEPS = (
    "Starting embedded PostgreSQL",
    "Checking that PostgreSQL computes vector distances",
    "Starting embedded Redis",
    "Migrating the platform database",
    "Migrating bridge schemas and silo databases",
    "Starting the Celery worker",
    "Loading the models in every web and worker process",
)


def _wait_http(url: str) -> None:
    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own loopback server
        except OSError:
            return False
        return True

    wait_until(answers, timeout=60, interval=0.5, message=f"{url} never answered")


def _get(url: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, response.read().decode()


def _assert_warm(data_dir: Path, port: int) -> None:
    """Once "running" is printed, every process has its models loaded: /readyz answers 200 at
    the first call, and the web process and each of the worker's pool processes left a marker
    saying warm (rag/warmup.py)."""
    import json

    status, body = _get(f"http://127.0.0.1:{port}/readyz")
    checks = json.loads(body)["checks"]
    assert status == 200 and checks["models_warm"] == "warm", body
    assert checks["embedding_model"] == "loaded" and checks["generator"] == "loaded", body
    markers = [json.loads(p.read_text()) for p in (data_dir / "warm").glob("*.json")]
    roles = sorted(m["role"] for m in markers if psutil.pid_exists(m["pid"]))
    workers = next(m["expected"] for m in markers if m["role"] == "worker")
    assert roles == ["web"] + ["worker"] * workers, markers
    assert all(m["state"] == "warm" for m in markers), markers


def _stop(proc: subprocess.Popen) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, alive


@pytest.mark.worker
def test_launcher_serves_console_and_demo_api_and_stops_cleanly(tmp_path):
    data_dir, port = tmp_path / "var", _free_port()
    proc, key = _start(data_dir, port)
    try:
        _assert_warm(data_dir, port)
        status, html = _get(f"http://127.0.0.1:{port}/console/login/")
        assert status == 200 and "Log in" in html
        status, body = _get(f"http://127.0.0.1:{port}/api/v1/tenant", key)
        assert status == 200 and '"slug":"demo"' in body
        assert _get(f"http://127.0.0.1:{port}/static/css/console.css")[0] == 200
    finally:
        _stop(proc)
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()

    proc, key_again = _start(data_dir, port)  # data survived: same admin, same demo key
    try:
        assert key_again == key
        assert _get(f"http://127.0.0.1:{port}/api/v1/tenant", key)[0] == 200
    finally:
        _stop(proc)


def test_launcher_refuses_to_start_on_a_server_that_cannot_compute_a_vector_distance(pg, tmp_path):
    from tests.helpers import database_without_pgvector

    with database_without_pgvector() as url:
        result = subprocess.run(
            [sys.executable, str(ROOT / "platform" / "run.py")],
            cwd=ROOT,
            env=_launcher_env(tmp_path / "var", _free_port(), DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Cannot start: PostgreSQL could not compute a vector distance" in result.stderr
    assert "x86-64-v3" in result.stderr
    assert "Migrating" not in result.stdout  # stopped before touching anything
