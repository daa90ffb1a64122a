"""A real gunicorn serving the app on a free loopback port, for tests that need HTTP itself
(concurrency, streaming, the official OpenAI client)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.helpers import service_env, wait_until

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    def __init__(
        self,
        log_dir: Path,
        threads: int = 16,
        env: dict[str, str] | None = None,
        collect_static: bool = True,
    ):
        self.log_path = log_dir / "gunicorn.log"
        self.env = env  # another stack's servers (fault tests); None: this session's
        self.port = free_port()
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        self.collect_static = collect_static  # False: an API-only server (benchmarks)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # As `make run` does: gunicorn serves static files from STATIC_ROOT (whitenoise).
        if self.collect_static:
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--no-input", "-v0"],
                cwd=ROOT,
                env=self.env or service_env(),
                check=True,
            )
        log = open(self.log_path, "w")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "platform" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--threads",
                str(self.threads),
                "config.wsgi:application",
            ],
            cwd=ROOT,
            env=self.env or service_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.log())
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/console/login/", timeout=2)  # noqa: S310
                return True
            return False

        wait_until(
            answers,
            timeout=120,
            interval=0.3,
            message=lambda: "gunicorn did not answer:\n" + self.log(),
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text()
