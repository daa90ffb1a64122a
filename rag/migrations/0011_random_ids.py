"""Every data-plane table's id becomes random like the chunks' (rag.models says why), existing
rows included.

Existing rows are renumbered: a bridge schema's or a silo's ids were drawn from its own
sequence from 1 up, the pool's from the shared one, so a tenant moved from one to the other
would bring ids the target already holds. The evaluation sets' ids are held by their questions
and runs (`eval_set_id`), rewritten with them in the same transaction (the foreign keys are
deferred). Nothing else stores these ids. An evaluation run queued by the console before the
migration and not yet picked up finds no run afterwards and is skipped; start it again.

As in 0008, row-level security is set to NO FORCE inside this migration's transaction so that
the owner, and only the owner, can renumber every tenant's rows, and forced again at the end.
"""

from django.db import migrations, models

import rag.models

RANDOM_ID_SQL = "(floor(random() * 9007199254740991) + 1)::bigint"

# table -> [(child table, column holding its id)]
RENUMBERED = {
    "rag_corpusversion": [],
    "rag_querylog": [],
    "rag_answercacheentry": [],
    "rag_embeddingcacheentry": [],
    "rag_evalset": [("rag_evalquestion", "eval_set_id"), ("rag_evalrun", "eval_set_id")],
    "rag_evalquestion": [],
    "rag_evalrun": [],
}

# New ids must differ from one another and from every old id: the primary key is checked row
# by row during the UPDATE, so a new id still held by a row not yet renumbered would fail it.
REDRAW_CLASHES_SQL = f"""
UPDATE id_renumber m SET new_id = {RANDOM_ID_SQL}
WHERE m.old_id IN (
    SELECT old_id FROM (
        SELECT old_id, row_number() OVER (PARTITION BY new_id ORDER BY old_id) AS n
        FROM id_renumber
    ) d WHERE d.n > 1
    UNION
    SELECT a.old_id FROM id_renumber a JOIN id_renumber b ON a.new_id = b.old_id
)
"""  # noqa: S608 - constants


def renumber(apps, schema_editor):
    tables = set(RENUMBERED) | {child for children in RENUMBERED.values() for child, _ in children}
    with schema_editor.connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        for table, children in RENUMBERED.items():
            cursor.execute(
                "CREATE TEMP TABLE id_renumber ON COMMIT DROP AS "  # noqa: S608 - constants
                f"SELECT id AS old_id, {RANDOM_ID_SQL} AS new_id FROM {table}"
            )
            cursor.execute("CREATE UNIQUE INDEX ON id_renumber (old_id)")
            cursor.execute("CREATE INDEX ON id_renumber (new_id)")
            cursor.execute(REDRAW_CLASHES_SQL)
            while cursor.rowcount:
                cursor.execute(REDRAW_CLASHES_SQL)
            cursor.execute(
                f"UPDATE {table} t SET id = m.new_id FROM id_renumber m WHERE t.id = m.old_id"  # noqa: S608
            )
            for child, column in children:
                cursor.execute(
                    f"UPDATE {child} c SET {column} = m.new_id "  # noqa: S608 - constants
                    f"FROM id_renumber m WHERE c.{column} = m.old_id"
                )
            cursor.execute("DROP TABLE id_renumber")
        # The deferred foreign-key checks run now: ALTER TABLE refuses a table with pending ones.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0010_answer_evaluation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="answercacheentry",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AlterField(
            model_name="corpusversion",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AlterField(
            model_name="embeddingcacheentry",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AlterField(
            model_name="evalquestion",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AlterField(
            model_name="evalrun",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AlterField(
            model_name="evalset",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.AlterField(
            model_name="querylog",
            name="id",
            field=models.BigIntegerField(
                db_default=rag.models.RandomId(), editable=False, primary_key=True, serialize=False
            ),
        ),
        migrations.RunPython(renumber, migrations.RunPython.noop),
    ]
