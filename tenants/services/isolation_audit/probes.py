"""Live probes as the app role: what PostgreSQL actually lets the platform's own role see and
write, whatever the catalog says.

Every probe is one transaction that is always rolled back (read-only where it only reads), with
short lock and statement timeouts, so an audit run against production changes no row and never
waits long behind the platform's own locks. An INSERT or UPDATE that wrongly succeeds is undone
by the rollback; it may still consume a sequence value, and its AFTER triggers run inside the
rolled-back transaction.

PostgreSQL checks a new row against the policies' WITH CHECK before NOT NULL, CHECK, unique and
foreign-key constraints (verified: `INSERT INTO t (tenant_id) VALUES (<other>)` on a table with
other NOT NULL columns fails with 42501, not 23502). So an INSERT naming only tenant_id is
enough: 42501 means refused; any other outcome, even a constraint error, means the row got
past row-level security.
"""

from __future__ import annotations

from contextlib import contextmanager
from uuid import UUID, uuid4

import psycopg
from psycopg import errors, sql

from .catalog import TableInfo
from .report import Finding, PlacementResult, ProbeNotRun
from .targets import Target

ROW_LIMIT = 1000  # counting stops here: enough to prove a leak, cheap on a large table
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "30s"


class ConnectionLost(Exception):
    pass


def run_probes(
    conn: psycopg.Connection,
    target: Target,
    tables: list[TableInfo],
    result: PlacementResult,
    *,
    other_id: UUID,
) -> None:
    """Probe every table of the placement. `conn` must be a fresh app-role connection: once a
    session has set app.tenant_id, even in a rolled-back transaction, the setting reads as ''
    rather than unset, so the `rows_unset` probe comes first."""
    subject = target.subject
    settings = [
        ("rows_unset", None, "unset"),
        ("rows_empty", "", "set to ''"),
        ("rows_malformed", "x", "set to 'x'"),
        ("rows_injection", "1 OR 1=1", "set to '1 OR 1=1'"),
        ("rows_other_tenant", str(other_id), f"set to {other_id}, which no tenant has"),
    ]
    probe = _Prober(conn, target, result)
    for name, value, described in settings:
        for table in tables:
            probe.rows(name, table, value, described)
    for table in tables:
        if not table.has_tenant_id:
            for name in ("rows_of_others_bound", "insert_other_tenant", "update_other_tenant"):
                probe.not_run(table, name, "no tenant_id column")
            continue
        if subject is None:
            probe.not_run(table, "rows_of_others_bound", "no pool tenant to bind")
        else:
            probe.rows(
                "rows_of_others_bound",
                table,
                str(subject.id),
                f"bound to {subject.slug}: rows of other tenants",
                exclude=subject.id,
            )
        if subject is None:
            probe.insert(table, bound=uuid4(), named="a tenant id no tenant has", other=other_id)
        else:
            probe.insert(table, bound=subject.id, named=subject.slug, other=other_id)
        if subject is None:
            probe.not_run(table, "update_other_tenant", "no pool tenant to bind")
        else:
            probe.update(table, bound=subject.id, named=subject.slug, other=other_id)


class _Prober:
    def __init__(self, conn: psycopg.Connection, target: Target, result: PlacementResult):
        self.conn, self.target, self.result = conn, target, result

    def rows(self, probe: str, table: TableInfo, value, described: str, exclude=None) -> None:
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} {} LIMIT {}) AS visible").format(
            self._ident(table),
            sql.SQL("WHERE tenant_id IS DISTINCT FROM %s" if exclude else ""),
            sql.Literal(ROW_LIMIT),
        )
        try:
            with self._transaction(value, read_only=True):
                count = self.conn.execute(query, [exclude] if exclude else []).fetchone()[0]
        except psycopg.Error as exc:
            return self._refused_or_error(probe, table, exc, f"app.tenant_id {described}")
        if count:
            more = "+" if count >= ROW_LIMIT else ""
            rows = "row" if count == 1 else "rows"
            self._finding(
                "probe_rows_visible",
                probe,
                table,
                f"{count}{more} {rows} visible to the app role with app.tenant_id {described}",
            )
        else:
            self.result.record(probe, "no_rows")

    def insert(self, table: TableInfo, *, bound: UUID, named: str, other: UUID) -> None:
        probe = "insert_other_tenant"
        query = sql.SQL("INSERT INTO {} (tenant_id) VALUES (%s)").format(self._ident(table))
        try:
            with self._transaction(str(bound), read_only=False):
                self.conn.execute(query, [other])
        except (errors.InsufficientPrivilege, errors.QueryCanceled, errors.LockNotAvailable) as e:
            return self._refused_or_error(probe, table, e, "insert")
        except psycopg.Error as exc:
            self._raise_if_lost(exc)
            detail = f"passed row-level security, then failed on {exc.sqlstate}: {_first(exc)}"
        else:
            detail = "the row was inserted (and rolled back by the audit)"
        self._finding(
            "probe_insert_other_tenant_allowed",
            probe,
            table,
            f"bound to {named}, INSERT with tenant_id {other} {detail}",
        )

    def update(self, table: TableInfo, *, bound: UUID, named: str, other: UUID) -> None:
        probe = "update_other_tenant"
        pick = sql.SQL("SELECT ctid FROM {} LIMIT 1").format(self._ident(table))
        move = sql.SQL("UPDATE {} SET tenant_id = %s WHERE ctid = %s::tid").format(
            self._ident(table)
        )
        try:
            with self._transaction(str(bound), read_only=False):
                row = self.conn.execute(pick).fetchone()
                if row is None:
                    return self.not_run(table, probe, "no rows")
                moved = self.conn.execute(move, [other, row[0]]).rowcount
        except (errors.InsufficientPrivilege, errors.QueryCanceled, errors.LockNotAvailable) as e:
            return self._refused_or_error(probe, table, e, "update")
        except psycopg.Error as exc:
            self._raise_if_lost(exc)
            detail = f"passed row-level security, then failed on {exc.sqlstate}: {_first(exc)}"
        else:
            if not moved:
                return self.not_run(table, probe, "the row changed meanwhile")
            detail = "the row was moved (and moved back by the audit's rollback)"
        self._finding(
            "probe_update_other_tenant_allowed",
            probe,
            table,
            f"bound to {named}, UPDATE SET tenant_id = {other} {detail}",
        )

    def not_run(self, table: TableInfo, probe: str, reason: str) -> None:
        self.result.not_run.append(ProbeNotRun(self.target.label, table.name, probe, reason))

    @contextmanager
    def _transaction(self, tenant_id: str | None, *, read_only: bool):
        with self.conn.transaction(force_rollback=True):
            if read_only:
                self.conn.execute("SET TRANSACTION READ ONLY")
            self.conn.execute(
                "SELECT set_config('lock_timeout', %s, true), "
                "set_config('statement_timeout', %s, true)",
                [LOCK_TIMEOUT, STATEMENT_TIMEOUT],
            )
            if tenant_id is not None:
                self.conn.execute("SELECT set_config('app.tenant_id', %s, true)", [tenant_id])
            yield

    def _refused_or_error(self, probe: str, table: TableInfo, exc, what: str) -> None:
        self._raise_if_lost(exc)
        if isinstance(exc, errors.InvalidTextRepresentation):
            self.result.record(probe, "refused_invalid_uuid")  # shows nothing: a pass
        elif isinstance(exc, errors.InsufficientPrivilege):
            kind = "rls" if "row-level security" in str(exc) else "privilege"
            self.result.record(probe, f"refused_{kind}")
        elif isinstance(exc, errors.LockNotAvailable):
            self.not_run(table, probe, f"row locked by another transaction ({LOCK_TIMEOUT})")
        elif isinstance(exc, errors.QueryCanceled):
            self.not_run(table, probe, f"timed out ({STATEMENT_TIMEOUT})")
        else:
            self._finding(
                "probe_error", probe, table, f"{what} failed on {exc.sqlstate}: {_first(exc)}"
            )

    def _raise_if_lost(self, exc: psycopg.Error) -> None:
        if self.conn.broken or self.conn.closed:
            raise ConnectionLost(_first(exc)) from exc

    def _finding(self, rule: str, probe: str, table: TableInfo, detail: str) -> None:
        self.result.record(probe, "finding")
        self.result.findings.append(
            Finding(self.target.label, rule, detail, table=table.name, probe=probe)
        )

    def _ident(self, table: TableInfo) -> sql.Identifier:
        return sql.Identifier(self.target.schema, table.name)


def _first(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
