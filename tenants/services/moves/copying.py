"""Moving rows: the bulk copy, applying captured changes, the target's indexes, and the check.

Rows travel in PostgreSQL's binary COPY format straight from a `COPY ... TO STDOUT` on the
source into a `COPY ... FROM STDIN` on the target, a block at a time, without being parsed
in Python: the embeddings go as they are stored (no model call), at the speed of a plain
COPY between the two servers. Both connections are bound to the tenant, so row-level
security limits every statement to its rows, in a pool too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from psycopg import sql

from .tables import Table, move_tables


def _copy_rows(
    source, target, table: Table, where: sql.Composable, params, *, keep_existing=False
) -> int:
    """COPY the source's selected rows into a staging table on the target, then INSERT them
    into the table: PostgreSQL refuses COPY FROM into a table under row-level security, and
    the INSERT is checked by the policy (every row must be the bound tenant's). Must run in a
    target transaction (the staging table goes with it). Returns the rows inserted."""
    cols = sql.SQL(table.column_list)
    name = sql.Identifier(table.name)
    stage = sql.Identifier(f"move_stage_{table.name}")
    target.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
        ).format(stage, cols, name)
    )
    out = sql.SQL("COPY (SELECT {} FROM {} {}) TO STDOUT (FORMAT BINARY)").format(cols, name, where)
    into = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(stage)
    with (
        source.cursor() as src,
        target.cursor() as dst,
        src.copy(out, params) as reader,
        dst.copy(into) as writer,
    ):
        for block in reader:
            writer.write(block)
    conflict = sql.SQL(" ON CONFLICT DO NOTHING" if keep_existing else "")
    inserted = target.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT * FROM {}{}").format(name, cols, stage, conflict)
    ).rowcount
    target.execute(sql.SQL("TRUNCATE {}").format(stage))
    return inserted


def _copy_direct(source, target, table: Table) -> int:
    cols = sql.SQL(table.column_list)
    name = sql.Identifier(table.name)
    target.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(name))
    out = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(cols, name)
    into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(name, cols)
    with (
        source.cursor() as src,
        target.cursor() as dst,
        src.copy(out) as reader,
        dst.copy(into) as writer,
    ):
        for block in reader:
            writer.write(block)
    # Unforced, the owner sees every row: none may be another tenant's (defence in depth).
    rows, strangers = target.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE tenant_id IS DISTINCT FROM "
            "current_setting('app.tenant_id')::uuid) FROM {}"
        ).format(name)
    ).fetchone()
    if strangers:
        raise RuntimeError(f"{table.name}: {strangers} rows of another tenant in the copy")
    # The deferred foreign-key checks run now: ALTER TABLE refuses a table with pending ones.
    target.execute("SET CONSTRAINTS ALL IMMEDIATE")
    target.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(name))
    return rows


def bulk_copy(
    source, target, *, on_table: Callable[[Table, int], None], own: bool
) -> dict[str, int]:
    """Copy every table of the tenant from one consistent snapshot of the source. The target's
    rows of the tenant are deleted first (a resumed copy starts over). Returns rows per table.

    One REPEATABLE READ transaction on the source makes the snapshot: a chunk is copied only
    with its document. Each table commits on the target on its own.

    `own`: the target is a placement of the tenant's own (a bridge schema, a silo), not yet
    served from. Its tables then take the COPY directly: inside each table's transaction the
    owner sets NO FORCE ROW LEVEL SECURITY (which lets the owner, and only the owner, past the
    policy, so PostgreSQL accepts COPY FROM) and FORCE again before committing; the ALTER
    holds the table exclusively, so nobody ever sees it unforced. The rows are the tenant's
    alone (the source read them under its policy) and are verified before the switch.
    """
    copied = {}
    with source.transaction():
        source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for table in reversed(move_tables()):
            with target.transaction():
                target.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
        for table in move_tables():
            with target.transaction():
                if table.derived:
                    continue
                if own:
                    copied[table.name] = _copy_direct(source, target, table)
                else:
                    copied[table.name] = _copy_rows(source, target, table, sql.SQL(""), None)
            on_table(table, copied[table.name])
        # Last: the target's own triggers wrote these while the rows above went in.
        with target.transaction():
            recopy_derived(source, target)
    return copied


def apply_changes(source, target, changes) -> int:
    """Bring the target's copies of the changed rows to the source's current state: delete
    them (children first), then copy those still in the source (parents first), in one target
    transaction; tables the data plane's triggers keep are re-copied whole. Repeating it is
    harmless. Returns the number of rows applied."""
    by_table: dict[str, list[str]] = defaultdict(list)
    for _, name, pk in changes:
        by_table[name].append(pk)
    tables = [t for t in move_tables() if t.name in by_table and not t.derived]
    with target.transaction():
        for table in reversed(tables):
            target.execute(
                sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::{}[])").format(
                    sql.Identifier(table.name), sql.Identifier(table.pk), sql.SQL(table.pk_type)
                ),
                [by_table[table.name]],
            )
        for table in tables:
            where = sql.SQL("WHERE {} = ANY(%s::{}[])").format(
                sql.Identifier(table.pk), sql.SQL(table.pk_type)
            )
            _copy_rows(source, target, table, where, [by_table[table.name]])
        recopy_derived(source, target)
    return len(changes)


def apply_late(source, target, changes) -> tuple[int, int]:
    """After the switch: add to the (now live) target the rows that searches and answers wrote
    to the source during the fence and the drain, keeping what the target has where both have
    a row (a cache entry made again since). Rows of other tables cannot have changed (the
    source refuses their writes from the fence on) and are left alone. Returns (applied,
    ignored)."""
    by_table: dict[str, list[str]] = defaultdict(list)
    ignored = 0
    for _, name, pk in changes:
        by_table[name].append(pk)
    with target.transaction():
        for table in move_tables():
            if table.name not in by_table:
                continue
            if not table.written_by_reads:
                ignored += len(by_table[table.name])
                continue
            where = sql.SQL("WHERE {} = ANY(%s::{}[])").format(
                sql.Identifier(table.pk), sql.SQL(table.pk_type)
            )
            _copy_rows(source, target, table, where, [by_table[table.name]], keep_existing=True)
    return len(changes) - ignored, ignored


def recopy_derived(source, target) -> None:
    for table in move_tables():
        if table.derived:
            target.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
            _copy_rows(source, target, table, sql.SQL(""), None)


def indexes_take_off(target, schema: str) -> list[str]:
    """Drop the target's secondary indexes (HNSW, full text, btree) before a bulk copy into a
    placement of the tenant's own, and return their definitions to build again after it:
    building an HNSW graph once over all rows is several times faster than growing it row by
    row. Indexes behind constraints (primary keys, unique) stay: the catch-up looks rows up
    by key."""
    rows = target.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY 1
        """,
        [schema, [t.name for t in move_tables()]],
    ).fetchall()
    with target.transaction():
        for name, _ in rows:
            target.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.SQL(name)))
    return [definition for _, definition in rows]


def indexes_put_back(target, definitions: list[str], *, memory: str = "512MB") -> None:
    """Build the indexes indexes_take_off dropped (those already back are skipped)."""
    target.execute("SELECT set_config('maintenance_work_mem', %s, false)", [memory])
    for definition in definitions:
        statement = definition.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
        target.execute(statement)


def checksums(conn, tables=None) -> dict[str, tuple[int, str]]:
    """Per table: (rows, a checksum of their contents) of the bound tenant's rows. The checksum
    is a sum of 64-bit hashes of each row's text, so it does not depend on row order."""
    result = {}
    for table in tables or move_tables():
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hashtextextended({}, 0)::numeric), 0) FROM {}"
            ).format(sql.SQL(table.hashed_row), sql.Identifier(table.name))
        ).fetchone()
        result[table.name] = (int(row[0]), str(row[1]))
    return result


def checksums_of(conn, keys: dict[str, list[str]]) -> dict[str, tuple[int, Decimal]]:
    """checksums() over only the rows with these primary keys, per table."""
    result = {}
    for table in move_tables():
        if table.name not in keys:
            continue
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hashtextextended({}, 0)::numeric), 0) FROM {} "
                "WHERE {} = ANY(%s::{}[])"
            ).format(
                sql.SQL(table.hashed_row),
                sql.Identifier(table.name),
                sql.Identifier(table.pk),
                sql.SQL(table.pk_type),
            ),
            [keys[table.name]],
        ).fetchone()
        result[table.name] = (int(row[0]), Decimal(row[1]))
    return result


def preverify(source, target, pending_sql: sql.Composable, params) -> tuple[list[str], dict]:
    """Compare both ends in full, outside the fence, leaving aside the rows still to apply.

    The source is read in one snapshot with the changes recorded but not applied yet (P): only
    those rows may differ from the target, which nobody but the move writes. So each table's
    count and checksum minus those of P's rows must be equal on both ends. Once that holds,
    the fence need only compare P and the rows it applies itself, row by row, instead of
    hashing every row of the tenant while its writes wait. Returns the tables that differ
    and P per table.
    """
    tables = [t for t in move_tables() if not t.written_by_reads and not t.derived]
    names = {t.name for t in tables}
    with ThreadPoolExecutor(1) as pool:
        right = pool.submit(checksums, target, tables)
        with source.transaction():
            source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            pending: dict[str, list[str]] = defaultdict(list)
            for name, pk in source.execute(pending_sql, params).fetchall():
                if name in names:
                    pending[name].append(pk)
            left = checksums(source, tables)
            left_p = checksums_of(source, pending)
        right = right.result()
    right_p = checksums_of(target, pending)
    differ = []
    for name in names:
        a_rows, a_sum = left[name][0], Decimal(left[name][1])
        b_rows, b_sum = right[name][0], Decimal(right[name][1])
        if name in pending:
            a_rows, a_sum = a_rows - left_p[name][0], a_sum - left_p[name][1]
            b_rows, b_sum = b_rows - right_p[name][0], b_sum - right_p[name][1]
        if (a_rows, a_sum) != (b_rows, b_sum):
            differ.append(name)
    return sorted(differ), dict(pending)


def verify_keys(source, target, keys: dict[str, list[str]]) -> list[str]:
    """In the fence: the rows with these keys (and the derived tables, whole) are the same on
    both ends. Returns the tables that differ."""
    derived = [t for t in move_tables() if t.derived]
    differ = [
        name
        for name, figures in checksums_of(source, keys).items()
        if figures != checksums_of(target, {name: keys[name]})[name]
    ]
    left, right = checksums(source, derived), checksums(target, derived)
    return sorted(differ + [n for n in left if left[n] != right[n]])
