"""Change capture on the source placement, and the write fence, in PostgreSQL.

Why triggers of our own and not logical replication: a move's source and target are often in
the same database (pool -> bridge) where a subscription cannot map one table onto another
schema's; logical replication needs `wal_level = logical`, a restart and replication slots on
servers the operator may not control, and a superuser or REPLICATION role; and a slot left
behind by a killed move keeps WAL forever. A row trigger needs none of that: it records in
the writing transaction itself (so a change is captured exactly when it commits) which row of
which table changed, and the move re-reads that row from the source when it applies it. It
costs one small insert per written row of the moving tenant, and nothing for other tenants of
a pool (the trigger's WHEN clause filters by tenant id before any function is called).

The fence lives in the same triggers. A write to a table the data plane fences (everything
but what searches and answers write) takes the move's advisory lock in shared mode for its
transaction; fencing is taking it exclusively, which waits for the writes in flight and
holds back new ones. A held-back write waits up to MOVE_FENCE_WAIT_SECONDS, then fails with
SQLSTATE 55T01 (`tenant_moving`: the API answers 503, Retry-After: 1). Once the move has
switched, a row in `tenantry_moves.fence` makes every such write fail at once with 55T02: a
process that still holds the old placement can no longer write there, only retry, at once
(Retry-After: 0), and find the new one.

Everything lives in the schema `tenantry_moves` of the source database, owned by the owner
role; the functions are SECURITY DEFINER with a fixed search_path, and the app role gets no
USAGE on the schema and no EXECUTE on them (check_isolation stays clean during a move).
"""

from __future__ import annotations

import random
import time

import psycopg
from django.conf import settings
from psycopg import sql

from ...models import TenantMove
from .tables import Table, move_tables

SCHEMA = "tenantry_moves"  # spelled out in the statements below
MOVING_SQLSTATE = "55T01"  # fenced too long: retry shortly
MOVED_SQLSTATE = "55T02"  # the tenant is live elsewhere now: retry at once
DDL_ATTEMPTS = 100

SETUP_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
CREATE TABLE IF NOT EXISTS {SCHEMA}.change (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    move_id uuid NOT NULL,
    tbl text NOT NULL,
    pk text NOT NULL
);
CREATE INDEX IF NOT EXISTS change_move ON {SCHEMA}.change (move_id, seq);
CREATE TABLE IF NOT EXISTS {SCHEMA}.fence (move_id uuid PRIMARY KEY, at timestamptz NOT NULL);
"""

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {schema} AS $body$
DECLARE
    deadline timestamptz;
BEGIN
    IF TG_ARGV[2] = 'fenced' THEN
        IF NOT pg_try_advisory_xact_lock_shared(TG_ARGV[1]::bigint) THEN
            deadline := clock_timestamp() + make_interval(secs => TG_ARGV[3]::float8);
            LOOP
                PERFORM pg_sleep(0.005);
                EXIT WHEN pg_try_advisory_xact_lock_shared(TG_ARGV[1]::bigint);
                IF clock_timestamp() > deadline THEN
                    RAISE EXCEPTION 'tenant_moving: writes are fenced while the tenant moves'
                        USING ERRCODE = '{sqlstate}';
                END IF;
            END LOOP;
        END IF;
        IF EXISTS (SELECT 1 FROM fence f WHERE f.move_id = TG_ARGV[0]::uuid) THEN
            RAISE EXCEPTION 'tenant_moving: the tenant has moved; retry'
                USING ERRCODE = '{moved}';
        END IF;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO change (move_id, tbl, pk)
        VALUES (TG_ARGV[0]::uuid, TG_TABLE_NAME, OLD.{pk}::text);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND OLD.{pk} IS DISTINCT FROM NEW.{pk}) THEN
        INSERT INTO change (move_id, tbl, pk)
        VALUES (TG_ARGV[0]::uuid, TG_TABLE_NAME, NEW.{pk}::text);
    END IF;
    RETURN NULL;
END
$body$
"""


def lock_key(move: TenantMove) -> int:
    """The move's advisory lock: 63 bits of its id (signed bigint)."""
    return int(move.id.hex[:16], 16) & 0x7FFF_FFFF_FFFF_FFFF


def _function(move: TenantMove, table: Table) -> sql.Composed:
    return sql.Identifier(SCHEMA, f"m{move.id.hex[:12]}_{table.name}")


def _trigger(move: TenantMove, suffix: str) -> sql.Identifier:
    return sql.Identifier(f"tenantry_move_{move.id.hex[:12]}_{suffix}")


def _ddl(conn: psycopg.Connection, work) -> None:
    """A transaction for trigger DDL on tables the app is writing to, that yields to them.

    CREATE and DROP TRIGGER lock each table in turn while writers lock the same tables in
    their own order, so the two can deadlock, and PostgreSQL would then abort one of them,
    perhaps a client's upload. With a lock timeout shorter than deadlock_timeout (1 s) the DDL
    gives up first, releases what it holds, and tries again a moment later: a write never
    pays for a move.
    """
    for attempt in range(DDL_ATTEMPTS):
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '200ms'")
                work()
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == DDL_ATTEMPTS - 1:
                raise
            time.sleep(0.05 + random.random() * 0.2)  # noqa: S311 - jitter, not a secret


def capture_install(conn: psycopg.Connection, move: TenantMove, schema: str) -> None:
    """Start capturing the tenant's writes in the source (idempotent: a resumed move
    re-installs over what a killed run left)."""

    def install() -> None:
        conn.execute(SETUP_SQL)
        for table in move_tables():
            function = _function(move, table)
            conn.execute(
                sql.SQL(
                    FUNCTION_SQL.format(
                        function="{function}",
                        schema=SCHEMA,
                        sqlstate=MOVING_SQLSTATE,
                        moved=MOVED_SQLSTATE,
                        pk=f'"{table.pk}"',
                    )
                ).format(function=function)
            )
            conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {}() FROM PUBLIC").format(function))
            mode = "open" if table.written_by_reads else "fenced"
            args = sql.SQL(", ").join(
                sql.Literal(a)
                for a in (
                    str(move.id),
                    str(lock_key(move)),
                    mode,
                    str(settings.MOVE_FENCE_WAIT_SECONDS),
                )
            )
            target = sql.Identifier(schema, table.name)
            tenant = sql.Literal(str(move.tenant_id))
            for suffix, events, row in (("w", "INSERT OR UPDATE", "NEW"), ("d", "DELETE", "OLD")):
                trigger = _trigger(move, suffix)
                conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, target))
                conn.execute(
                    sql.SQL(
                        "CREATE TRIGGER {} AFTER " + events + " ON {} FOR EACH ROW "
                        "WHEN (" + row + ".tenant_id = {}::uuid) EXECUTE FUNCTION {}({})"
                    ).format(trigger, target, tenant, function, args)
                )

    _ddl(conn, install)


def capture_remove(conn: psycopg.Connection, move: TenantMove) -> None:
    """Stop capturing and forget the move's changes and fence (its triggers go with the
    functions). Harmless to repeat, and when nothing was installed."""

    def remove() -> None:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [SCHEMA]).fetchone()
        if not exists:
            return
        for table in move_tables():
            conn.execute(
                sql.SQL("DROP FUNCTION IF EXISTS {}() CASCADE").format(_function(move, table))
            )
        conn.execute("DELETE FROM tenantry_moves.change WHERE move_id = %s", [move.id])
        conn.execute("DELETE FROM tenantry_moves.fence WHERE move_id = %s", [move.id])
        # The last move out of this database takes the schema with it.
        others = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s",
            [SCHEMA],
        ).fetchone()[0]
        if not others:
            conn.execute("DROP SCHEMA tenantry_moves CASCADE")

    _ddl(conn, remove)


def changes_pending(conn: psycopg.Connection, move: TenantMove) -> int:
    row = conn.execute(
        "SELECT count(*) FROM tenantry_moves.change WHERE move_id = %s", [move.id]
    ).fetchone()
    return int(row[0])


def pending_query(move: TenantMove) -> tuple[sql.Composable, list]:
    """The (table, pk) of every change recorded and not applied yet: statement and params."""
    return sql.SQL("SELECT tbl, pk FROM tenantry_moves.change WHERE move_id = %s"), [move.id]


def changes_take(conn: psycopg.Connection, move: TenantMove, limit: int):
    """Up to `limit` captured changes, oldest first: [(seq, table, pk)]. Committed ones only,
    so one committing later is left for the next batch, never skipped."""
    return conn.execute(
        "SELECT seq, tbl, pk FROM tenantry_moves.change WHERE move_id = %s ORDER BY seq LIMIT %s",
        [move.id, limit],
    ).fetchall()


def changes_done(conn: psycopg.Connection, seqs: list[int]) -> None:
    conn.execute("DELETE FROM tenantry_moves.change WHERE seq = ANY(%s)", [seqs])


def fence_take(conn: psycopg.Connection, move: TenantMove, timeout_s: float) -> bool:
    """Hold back the tenant's fenced writes: take the move's lock exclusively on this session
    (it waits for the writes in flight). False if that took longer than `timeout_s`."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(timeout_s * 1000)}ms"])
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", [lock_key(move)])
    except psycopg.errors.LockNotAvailable:
        return False
    finally:
        conn.execute("SELECT set_config('lock_timeout', '0', false)")
    return True


def fence_release(conn: psycopg.Connection, move: TenantMove) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", [lock_key(move)])


def fence_close(conn: psycopg.Connection, move: TenantMove) -> None:
    """From now on every fenced write to the source fails at once (the tenant has moved)."""
    conn.execute(
        "INSERT INTO tenantry_moves.fence (move_id, at) VALUES (%s, now()) ON CONFLICT DO NOTHING",
        [move.id],
    )


def fence_open(conn: psycopg.Connection, move: TenantMove) -> None:
    """Undo fence_close (a resumed or rolled-back move that had not switched)."""
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [SCHEMA]).fetchone()
    if exists:
        conn.execute("DELETE FROM tenantry_moves.fence WHERE move_id = %s", [move.id])
