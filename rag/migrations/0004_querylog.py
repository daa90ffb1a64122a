import django.db.models.functions.datetime
from django.db import migrations, models

import tenants.rls
from tenants.rls import enable_rls


class Migration(migrations.Migration):
    dependencies = [
        ("rag", "0003_document_source"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueryLog",
            fields=[
                (
                    "tenant_id",
                    models.UUIDField(
                        db_default=tenants.rls.CurrentTenantId(), db_index=True, editable=False
                    ),
                ),
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("search", "Search"), ("answer", "Answer")], max_length=10
                    ),
                ),
                ("question", models.TextField(blank=True, default="")),
                ("question_sha256", models.CharField(max_length=64)),
                ("mode", models.CharField(blank=True, default="", max_length=10)),
                ("k", models.IntegerField(default=0)),
                (
                    "status",
                    models.CharField(
                        choices=[("ok", "OK"), ("error", "Error")], default="ok", max_length=10
                    ),
                ),
                ("timings", models.JSONField(blank=True, default=dict)),
                ("prompt_tokens", models.IntegerField(default=0)),
                ("completion_tokens", models.IntegerField(default=0)),
                ("citations", models.JSONField(blank=True, default=list)),
                ("api_key_prefix", models.CharField(blank=True, default="", max_length=16)),
                (
                    "source",
                    models.CharField(
                        choices=[
                            ("api", "API"),
                            ("console", "Console"),
                            ("cli", "Command"),
                            ("openai", "OpenAI API"),
                        ],
                        default="api",
                        max_length=10,
                    ),
                ),
                ("cache_hit", models.BooleanField(default=False)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [models.Index(fields=["created_at"], name="querylog_created_at")],
            },
        ),
        enable_rls("rag_querylog"),
    ]
