"""Chunk ids become random (rag.models.RANDOM_CHUNK_ID_SQL says why), existing ones included.

The identity goes and the random default comes in one AlterField (Django drops the identity,
and its sequence, with `DROP IDENTITY IF EXISTS`). Its ACCESS EXCLUSIVE lock on rag_chunk is
held to the end of this migration's transaction, so no chunk is written while it renumbers.

Existing chunks are renumbered too: ids handed out by the shared sequence would keep telling
neighbours' ingestion counts for as long as those chunks live. Every store of chunk ids:

- rag_querylog.citations: rewritten to the new ids. It is the tenant's history, and the
  console links each citation to its chunk; a citation of a chunk deleted since pointed nowhere
  already and is left as it was.
- rag_answercacheentry.response: deleted. It is a cache (the next identical question fills it
  again), and its citations hold the old ids.
- evaluation runs (rag_evalrun) and questions count relevant *documents*, never chunks:
  nothing to change. Nothing else stores a chunk id (no foreign key points at rag_chunk).

Row-level security is forced on these tables, for their owner as well, and a migration has no
tenant bound: as it stands the owner would see, update and delete no row at all. So, inside
this migration's transaction (where nobody else can see it), the three tables are set to NO
FORCE, which lets their owner, and only their owner, past the policy, and forced again at the
end. The app role is never the owner, so the policy keeps applying to it throughout.

Renumbering rewrites every chunk row and its index entries (the HNSW index included): on a
large pool expect it to take about as long as building that index.

Backwards, the identity comes back (starting at 1) and the ids stay random.
"""

from django.db import migrations, models

import rag.models
from rag.models import RANDOM_CHUNK_ID_SQL

RENUMBERED_TABLES = ("rag_chunk", "rag_querylog", "rag_answercacheentry")

# New ids must differ from one another and from every old id: a non-deferrable primary key is
# checked row by row during the UPDATE, so a new id still held by a row not yet renumbered
# would fail it.
REDRAW_CLASHES_SQL = f"""
UPDATE chunk_renumber m SET new_id = {RANDOM_CHUNK_ID_SQL}
WHERE m.old_id IN (
    SELECT old_id FROM (
        SELECT old_id, row_number() OVER (PARTITION BY new_id ORDER BY old_id) AS n
        FROM chunk_renumber
    ) d WHERE d.n > 1
    UNION
    SELECT a.old_id FROM chunk_renumber a JOIN chunk_renumber b ON a.new_id = b.old_id
)
"""  # noqa: S608 - constants

# Citations are [{"n", "chunk_id", "document_id"}]; anything else is left alone, and the cast
# is guarded so that a malformed entry cannot fail the migration.
QUERYLOG_REWRITE_SQL = """
WITH rewritten AS (
    SELECT q.id,
           jsonb_agg(CASE WHEN m.new_id IS NULL THEN e.item
                          ELSE jsonb_set(e.item, '{chunk_id}', to_jsonb(m.new_id)) END
                     ORDER BY e.pos) AS citations
    FROM rag_querylog q
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(q.citations) = 'array' THEN q.citations ELSE '[]' END
    ) WITH ORDINALITY AS e(item, pos)
    LEFT JOIN chunk_renumber m
        ON m.tenant_id = q.tenant_id
        AND m.old_id = CASE WHEN jsonb_typeof(e.item -> 'chunk_id') = 'number'
                            THEN (e.item ->> 'chunk_id')::numeric END
    GROUP BY q.id
    HAVING count(m.new_id) > 0
)
UPDATE rag_querylog q SET citations = r.citations FROM rewritten r WHERE q.id = r.id
"""


def renumber_chunks(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table in RENUMBERED_TABLES:
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        cursor.execute(
            "CREATE TEMP TABLE chunk_renumber ON COMMIT DROP AS "  # noqa: S608 - constants
            f"SELECT id AS old_id, tenant_id, {RANDOM_CHUNK_ID_SQL} AS new_id FROM rag_chunk"
        )
        cursor.execute("CREATE UNIQUE INDEX ON chunk_renumber (old_id)")
        cursor.execute("CREATE INDEX ON chunk_renumber (new_id)")
        cursor.execute(REDRAW_CLASHES_SQL)
        while cursor.rowcount:
            cursor.execute(REDRAW_CLASHES_SQL)
        cursor.execute(
            "UPDATE rag_chunk c SET id = m.new_id FROM chunk_renumber m WHERE c.id = m.old_id"
        )
        cursor.execute(QUERYLOG_REWRITE_SQL)
        cursor.execute("DELETE FROM rag_answercacheentry")
        cursor.execute("DROP TABLE chunk_renumber")
        for table in RENUMBERED_TABLES:
            cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0007_gin_without_pending_list"),
    ]

    operations = [
        migrations.AlterField(
            model_name="chunk",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomChunkId(),
                editable=False,
                primary_key=True,
                serialize=False,
            ),
        ),
        migrations.RunPython(renumber_chunks, migrations.RunPython.noop),
    ]
