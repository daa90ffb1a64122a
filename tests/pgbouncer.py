"""A real PgBouncer in transaction mode in front of the test session's embedded PostgreSQL.

Why a process of our own and not the Debian package's service: the service listens on a fixed
port with a system-wide ini, and systemd may not run at all. Each test gets its own ini,
userlist and log in a temporary directory, a free loopback port, and stops its process.

The embedded server listens only on a Unix socket inside its data directory, which only the
user running the server may enter; under root PgBouncer refuses to keep root (`user =`), so it
becomes that same user (`config.embedded.SYSTEM_USER`), who can reach the socket.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from django.conf import settings

from config import embedded
from tests.helpers import superuser
from tests.server import free_port

# Every client through this pooler names itself so, and PgBouncer passes application_name on
# to the server connection it lends: the real server can then tell PgBouncer's connections
# from the test process's direct ones.
APPLICATION_NAME = "tenantry-via-pgbouncer"
ADMIN_USER = "pgbouncer"  # PgBouncer's own console (SHOW POOLS, SHOW SERVERS)


def pgbouncer_binary() -> str:
    """The pgbouncer executable, or a RuntimeError saying how to install it (no skip)."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(
            "PgBouncer is not installed (looked on PATH and in /usr/sbin): "
            "`apt-get install pgbouncer` (`make test-packages` installs it)."
        )
    return found


class PgBouncer:
    """PgBouncer with `pool_mode = transaction` and `pool_size` server connections at most per
    database (`max_db_connections`), for the app and owner roles of the embedded server."""

    def __init__(
        self,
        *,
        pool_size: int = 2,
        query_wait_timeout: int = 60,
    ):
        # Its own directory under /tmp, not pytest's tmp_path: under root PgBouncer runs as
        # another user, who could not traverse pytest's 0700 directories.
        self.dir = Path(tempfile.mkdtemp(prefix="tenantry-pgbouncer-"))
        self.pool_size = pool_size
        # A client that waits longer than this for a server connection gets an error instead
        # of hanging the test (PgBouncer's default is 120 s).
        self.query_wait_timeout = query_wait_timeout
        self.port = free_port()
        self.admin_password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None
        self._final_log = ""

    # --- where clients connect ---------------------------------------------------------------

    def url(
        self,
        role: str = embedded.APP_ROLE,
        database: str = embedded.PLATFORM_DB,
        application_name: str = APPLICATION_NAME,
    ) -> str:
        """A postgresql:// URL through PgBouncer, as DATABASE_URL takes it."""
        password = quote(self._passwords()[role], safe="")
        query = urlencode({"application_name": application_name})
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}?{query}"

    def connect(
        self, role: str = embedded.APP_ROLE, database: str = embedded.PLATFORM_DB, **kwargs
    ) -> psycopg.Connection:
        """A raw autocommit psycopg connection through PgBouncer (psycopg's defaults)."""
        return psycopg.connect(self.url(role, database), autocommit=True, **kwargs)

    def admin(self) -> psycopg.Connection:
        """PgBouncer's console (`SHOW POOLS`...): simple query protocol only."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname="pgbouncer",
            user=ADMIN_USER,
            password=self.admin_password,
            autocommit=True,
            prepare_threshold=None,
            cursor_factory=psycopg.ClientCursor,
        )

    def show(self, what: str) -> list[dict]:
        with self.admin() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute(f"SHOW {what}")
            return cur.fetchall()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PgBouncer:
        binary = pgbouncer_binary()
        ini = self.dir / "pgbouncer.ini"
        userlist = self.dir / "userlist.txt"
        userlist.write_text(self._userlist())
        ini.write_text(self._ini(userlist))
        for path in (userlist, ini):
            path.chmod(0o600)
        if os.geteuid() == 0:
            self._give_to(embedded.SYSTEM_USER)
        log = open(self.dir / "stdout.log", "w")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [binary, str(ini)],
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self.proc.returncode}):\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("pgbouncer did not listen:\n" + self.log())

    def stop(self) -> None:
        """SIGINT: PgBouncer's safe shutdown; it closes every server connection it holds.
        The directory (it holds the roles' SCRAM secrets) goes with it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None
        if self.dir.exists():
            self._final_log = self.log()
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        if not self.dir.exists():
            return self._final_log
        return "\n".join(
            p.read_text(errors="replace")
            for p in (self.dir / "pgbouncer.log", self.dir / "stdout.log")
            if p.exists()
        )

    # --- configuration -----------------------------------------------------------------------

    def _server(self) -> tuple[str, str]:
        """Socket directory and port of the session's server (the `owner` alias's settings)."""
        cfg = settings.DATABASES["owner"]
        options = cfg.get("OPTIONS", {})
        host = options.get("host") or cfg.get("HOST")
        port = str(options.get("port") or cfg.get("PORT") or 5432)
        return host, port

    def _ini(self, userlist: Path) -> str:
        host, port = self._server()
        platform = f"host={host} port={port} dbname={embedded.PLATFORM_DB}"
        lines = [
            "[databases]",
            f"{embedded.PLATFORM_DB} = {platform}",
            # Silo databases on the same server: one pool each, made on first use.
            f"* = host={host} port={port}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            f"logfile = {self.dir / 'pgbouncer.log'}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            f"max_db_connections = {self.pool_size}",
            "reserve_pool_size = 0",
            "max_client_conn = 500",
            "auth_type = scram-sha-256",
            f"auth_file = {userlist}",
            f"admin_users = {ADMIN_USER}",
            f"query_wait_timeout = {self.query_wait_timeout}",
            # The tests poll the console many times a second; keep the log for what matters.
            "log_connections = 0",
            "log_disconnections = 0",
            # server_reset_query stays at its default: PgBouncer never runs it in transaction
            # mode (server_reset_query_always = 0), and nothing here needs it.
            "ignore_startup_parameters =",
        ]
        if os.geteuid() == 0:
            lines.append(f"user = {embedded.SYSTEM_USER}")
        return "\n".join(lines) + "\n"

    def _passwords(self) -> dict[str, str]:
        return {
            embedded.APP_ROLE: settings.DATABASES["default"]["PASSWORD"],
            embedded.OWNER_ROLE: settings.DATABASES["owner"]["PASSWORD"],
        }

    def _userlist(self) -> str:
        """The roles' SCRAM secrets as the server stores them, as an admin copies them for
        production; PgBouncer logs in to the server with them when the client used SCRAM."""
        roles = [embedded.APP_ROLE, embedded.OWNER_ROLE]
        with superuser() as conn:
            rows = conn.execute(
                "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", [roles]
            ).fetchall()
        secrets_by_role = dict(rows)
        if any(not (secrets_by_role.get(r) or "").startswith("SCRAM-SHA-256$") for r in roles):
            raise RuntimeError(f"expected SCRAM secrets for {roles}, found {secrets_by_role}")
        entries = [(role, secrets_by_role[role]) for role in roles]
        entries.append((ADMIN_USER, self.admin_password))
        return "".join(f'"{name}" "{secret}"\n' for name, secret in entries)

    def _give_to(self, user: str) -> None:
        import pwd

        owner = pwd.getpwnam(user)
        for path in (self.dir, *self.dir.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
