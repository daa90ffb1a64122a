"""The keyword index stops collecting new rows in a pending list (rag.models.Chunk says why).

Altered in place rather than rebuilt, and the list already pending merged into the index now.
"""

from django.contrib.postgres.indexes import GinIndex
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0006_evaluation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER INDEX chunk_search_vector_gin SET (fastupdate = off); "
                    "SELECT gin_clean_pending_list('chunk_search_vector_gin'::regclass);",
                    reverse_sql="ALTER INDEX chunk_search_vector_gin RESET (fastupdate);",
                ),
            ],
            state_operations=[
                migrations.RemoveIndex(model_name="chunk", name="chunk_search_vector_gin"),
                migrations.AddIndex(
                    model_name="chunk",
                    index=GinIndex(
                        fastupdate=False, fields=["search_vector"], name="chunk_search_vector_gin"
                    ),
                ),
            ],
        ),
    ]
