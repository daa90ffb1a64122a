"""Can this PostgreSQL server compute a vector distance? Asked at start and by `/readyz`.

Why: a pgvector built for another CPU loads, creates its type and answers `SELECT 1`, then
kills the server process with "invalid opcode" on the first distance: the user's first search.
Asking for one distance, and its known value, moves that failure to start-up with a message
that says what is wrong. Free of Django: the launcher calls it before Django is configured.
"""

from __future__ import annotations

import math

# vector_norm and the L2 distance run pgvector's vectorised loops (the code a -march=native
# build puts AVX-512 in); 3-4-5 makes the answer exact in float4.
SQL = "SELECT '[3,4]'::vector <-> '[0,0]'::vector, vector_norm('[6,8]'::vector)"
EXPECTED = (5.0, 10.0)

ADVICE = (
    "pgvector is missing from the database, or the server crashed computing the distance: "
    "a pgvector built for another CPU does that (the kernel log says 'invalid opcode'). "
    "Tenantry needs an x86-64-v3 CPU (AVX2) and a pgvector built for it."
)


class VectorsBroken(RuntimeError):
    """The server could not compute a vector distance, or computed a wrong one."""


def check_cursor(cursor) -> str:
    """Run the self-test on a DB-API cursor (Django's or psycopg's); "ok" or VectorsBroken."""
    try:
        cursor.execute(SQL)
        row = cursor.fetchone()
    except Exception as exc:
        message = f"PostgreSQL could not compute a vector distance ({exc}). {ADVICE}"
        raise VectorsBroken(message) from exc
    got = tuple(float(value) for value in row)
    if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(got, EXPECTED, strict=True)):
        raise VectorsBroken(f"PostgreSQL computed vector distances {got}, not {EXPECTED}. {ADVICE}")
    return "ok"


def check_dsn(dsn: str) -> str:
    """The same on a new connection to `dsn` (a libpq URL or key=value string)."""
    import psycopg

    try:
        conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise VectorsBroken(f"cannot connect to PostgreSQL: {exc}") from exc
    with conn, conn.cursor() as cursor:
        return check_cursor(cursor)
