"""Each tenant records the embedding backend its chunks were embedded with (one of those
settings.EMBEDDING_BACKEND may name).

Every existing tenant's chunks were embedded by torch, the only backend there was, so existing
rows get `torch`; new tenants take settings.EMBEDDING_BACKEND."""

from django.db import migrations, models

import tenants.models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_servers_and_moves"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="embedding_backend",
            field=models.CharField(default="torch", max_length=20),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="tenant",
            name="embedding_backend",
            field=models.CharField(default=tenants.models.default_embedding_backend, max_length=20),
        ),
    ]
