#!/usr/bin/env python
"""`make run`: the whole platform on one machine with nothing else installed.

Starts (or attaches to) the embedded PostgreSQL and Redis under DATA_DIR unless DATABASE_URL /
REDIS_URL are set, migrates, bootstraps the admin and demo tenant, then runs a Celery worker,
Celery beat (periodic tasks) and gunicorn on PORT. Ctrl-C stops every process started here;
data stays in DATA_DIR.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import servers, vector_check  # noqa: E402


def step(message: str) -> None:
    """One line per start-up step, so a slow first start never looks like a hang."""
    print(f"==> {message}", flush=True)


def main() -> int:
    data_dir = servers.data_dir()
    port = os.environ.get("PORT", "8000")
    os.environ["DATA_DIR"] = str(data_dir)
    servers.ensure_environment(step)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    step("Checking that PostgreSQL computes vector distances (pgvector)")
    try:
        vector_check.check_dsn(env["DATABASE_URL"])
    except vector_check.VectorsBroken as exc:
        print(f"Cannot start: {exc}", file=sys.stderr, flush=True)
        return 1

    # Prometheus multiprocess files: every process writes its own; a new start begins at zero
    # (counters of processes that no longer exist would otherwise stay in the sums forever).
    metrics_dir = Path(env.get("METRICS_DIR") or data_dir / "metrics").resolve()
    reset_metrics_dir(metrics_dir)
    env["METRICS_DIR"] = str(metrics_dir)
    warm_dir = Path(env.get("WARM_DIR") or data_dir / "warm").resolve()
    reset_warm_dir(warm_dir)
    env["WARM_DIR"] = str(warm_dir)

    manage = [sys.executable, str(ROOT / "manage.py")]
    for message, command in (
        ("Migrating the platform database", ["migrate", "--no-input"]),
        ("Migrating bridge schemas and silo databases", ["migrate_tenants"]),
        ("Collecting static files", ["collectstatic", "--no-input", "-v0"]),
        (
            "Exporting the embedding model to ONNX (first start only, about a minute)",
            ["embedding_export"],
        ),
        (
            "Creating the console user and demo tenant (when missing)",
            ["bootstrap_demo", "--base-url", f"http://127.0.0.1:{port}"],
        ),
    ):
        step(message)
        subprocess.run(manage + command, env=env, cwd=ROOT, check=True)

    step("Starting the Celery worker (loads the embedding model), Celery beat and the web server")
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
            ],
            env=env,
            cwd=ROOT,
        ),
        # Periodic tasks (stuck-document recovery, retention) come from one beat process of
        # their own: embedded in the worker (-B) it would run once per worker and slow it.
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(data_dir / "celerybeat-schedule"),
            ],
            env=env,
            cwd=ROOT,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "platform" / "gunicorn.conf.py"),
                "--bind",
                f"{os.environ.get('HOST', '127.0.0.1')}:{port}",
                "config.wsgi:application",
            ],
            env=env,
            cwd=ROOT,
        ),
    ]
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    step("Loading the models in every web and worker process")
    if not wait_until_warm(warm_dir, children, f"http://127.0.0.1:{port}/readyz", lambda: stopping):
        stopping = True
    else:
        print(f"Tenantry is running on http://127.0.0.1:{port}/ (Ctrl-C to stop).", flush=True)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    print("Stopped. Data is kept in", data_dir, flush=True)
    # The embedded servers stop at exit, once no other process is attached to them.
    return 0 if stopping else 1


def wait_until_warm(warm_dir: Path, children, readyz: str, stopped) -> bool:
    """Until every web and worker process has loaded its models (their markers, rag/warmup.py)
    and /readyz answers 200, so the first request after "running" is served as fast as the
    hundredth. False if a process exited, a model failed to load, or Ctrl-C came first."""
    import urllib.error
    import urllib.request

    from rag.warmup import FAILED, WARM, all_warm

    said = ""
    while not stopped():
        if any(child.poll() is not None for child in children):
            print("A process exited while loading the models.", file=sys.stderr, flush=True)
            return False
        state, detail = all_warm(warm_dir)
        if state == FAILED:
            print(f"Cannot start: {detail}", file=sys.stderr, flush=True)
            return False
        if state == WARM:
            try:
                with urllib.request.urlopen(readyz, timeout=5):  # noqa: S310 - our own server
                    return True
            except (urllib.error.URLError, OSError) as exc:
                detail = f"/readyz: {exc}"
        if detail != said:
            print(f"    {detail}", flush=True)
            said = detail
        time.sleep(0.5)
    return False


def reset_warm_dir(path: Path) -> None:
    """Create the warm-marker folder, or empty it of a previous run's markers."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.json"):
        stale.unlink(missing_ok=True)


def reset_metrics_dir(path: Path) -> None:
    """Create the metrics folder, or empty it of the files a previous run left."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
