"""A chunk set records the backend it was embedded with (existing ones: torch, the only one
there was), and chunks get the column a re-embedding fills before it swaps (rag.services.reembed).
Both columns are added without rewriting the tables: a constant default and a NULL column."""

import pgvector.django
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0011_random_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="embedding_backend",
            field=models.CharField(blank=True, db_default="torch", default="", max_length=20),
        ),
        migrations.AddField(
            model_name="chunk",
            name="embedding_next",
            field=pgvector.django.VectorField(blank=True, dimensions=384, null=True),
        ),
    ]
