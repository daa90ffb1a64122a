"""The data-plane tables a move copies, as the kernel learns them from the data plane.

Parents come before children (the data plane's model order), so a copy inserts documents
before their chunks and deletes the other way round. Generated columns are left out: the
target computes them. Two kinds of tables are set apart by the data plane (tenants/planes.py):
`written_by_reads` (the query log and the caches, written by searches and answers, which a
move must never refuse) and `derived` (rows the data plane's own triggers keep, such as the
corpus version, which a move re-copies whole after each batch instead of row by row).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import connection

from ...planes import data_plane


@dataclass(frozen=True)
class Table:
    name: str
    pk: str
    pk_type: str
    columns: tuple[str, ...]
    written_by_reads: bool
    derived: bool
    # Columns of a binary type with a send function worth hashing instead of printing
    # (an embedding's text is 384 formatted floats; its binary form is hashed 10x faster).
    binary_columns: tuple[str, ...] = ()

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)

    @property
    def hashed_row(self) -> str:
        """The row as one text to hash: the other columns as a row, then md5 of each binary
        column's wire form."""
        plain = ", ".join(f'"{c}"' for c in self.columns if c not in self.binary_columns)
        parts = [f"ROW({plain})::text"]
        parts += [f"coalesce(md5(vector_send(\"{c}\")), '-')" for c in self.binary_columns]
        return " || ".join(parts)


@cache
def move_tables() -> tuple[Table, ...]:
    plane = data_plane()
    by_reads = set(getattr(plane, "written_by_reads", ()))
    derived = set(getattr(plane, "derived", ()))
    tables = []
    for model in plane.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed:
            continue
        fields = [f for f in meta.concrete_fields if not f.generated]
        columns = tuple(f.column for f in fields)
        vectors = tuple(
            f.column for f in fields if (f.db_type(connection) or "").startswith("vector(")
        )
        tables.append(
            Table(
                name=meta.db_table,
                pk=meta.pk.column,
                pk_type=meta.pk.db_type(connection),
                columns=columns,
                written_by_reads=meta.object_name in by_reads,
                derived=meta.object_name in derived,
                binary_columns=vectors,
            )
        )
    return tuple(tables)


def table_named(name: str) -> Table:
    return next(t for t in move_tables() if t.name == name)
