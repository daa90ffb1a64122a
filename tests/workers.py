"""A real Celery worker process for integration tests, that a test may kill and restart."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.helpers import service_env, wait_until

ROOT = Path(__file__).resolve().parent.parent

# Short recovery timings so a killed worker's document is picked up within the test.
WORKER_SETTINGS = {
    "INGEST_STUCK_AFTER_SECONDS": "25",
    "INGEST_SWEEP_INTERVAL_SECONDS": "3",
}


class Worker:
    def __init__(
        self,
        log_dir: Path,
        settings: dict[str, str] | None = None,
        *,
        beat: bool = True,
        concurrency: int | None = 1,
        env: dict[str, str] | None = None,
    ):
        self.log_dir = log_dir
        self.settings = WORKER_SETTINGS if settings is None else settings
        self.beat = beat  # tests need the periodic sweeps; a benchmark must not pay for them
        # Tests run one process; None sizes the worker as production does (config.settings).
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.env = env  # another stack's servers (fault tests); None: this session's

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "w")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                *(["-B"] if self.beat else []),
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                # Test-only probes of the connection state a task finds (tests/celery_probe.py).
                "--include",
                "tests.celery_probe",
                "--schedule",
                str(self.log_dir / "beat-schedule"),
            ],
            cwd=ROOT,
            env={
                **(self.env or service_env()),
                **self.settings,
                **({"CELERY_CONCURRENCY": str(self.concurrency)} if self.concurrency else {}),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        path = self.log_dir / f"worker-{self.starts}.log"

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("worker did not start:\n" + path.read_text())
            return "ready." in path.read_text()

        wait_until(ready, timeout=120, message=lambda: "worker did not start:\n" + path.read_text())

    def kill(self) -> None:
        """SIGKILL the worker and its children at once, as a crash or OOM kill would."""
        if self.proc is None:
            return
        procs = [
            psutil.Process(self.proc.pid),
            *psutil.Process(self.proc.pid).children(recursive=True),
        ]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def log(self) -> str:
        return (self.log_dir / f"worker-{self.starts}.log").read_text()
