from django.apps import AppConfig


class RagConfig(AppConfig):
    """Data plane: documents and chunks, placed per tenant (pool, bridge or silo).

    It declares itself to the kernel (`data_plane = True`, see tenants/planes.py), which then
    routes its models by tenant context, migrates it into bridge schemas and silos, and asks it
    what a tenant stores; the kernel never imports it. It also adds its models' readiness
    checks to /readyz.
    """

    name = "rag"
    default_auto_field = "django.db.models.BigAutoField"
    data_plane = True
    # For live tenant moves (tenants/services/moves/tables.py): tables that searches and
    # answers write, whose writes a move must never refuse, and rows this app's own triggers
    # keep (migration 0005), which a move re-copies whole.
    written_by_reads = ("QueryLog", "AnswerCacheEntry", "EmbeddingCacheEntry")
    derived = ("CorpusVersion",)

    def ready(self) -> None:
        from observability.health import register_check

        from . import health

        register_check("embedding_model", health.check_embedding_model, cached=True)
        register_check("generator", health.check_generator, cached=True)
        register_check("models_warm", health.check_warm)

    def stored(self, *, chunks: bool = False):
        from django.db.models import Count, F, Sum
        from django.db.models.functions import Coalesce

        from tenants.planes import Stored

        # A document's metadata is stored bytes too (Document.metadata_bytes says how many).
        totals = self.get_model("Document").objects.aggregate(
            documents=Count("pk"),
            stored=Coalesce(Sum(F("size_bytes") + F("metadata_bytes")), 0),
        )
        # Chunks only when asked (server_list): quota admission calls this on every upload.
        count = self.get_model("Chunk").objects.count() if chunks else 0
        return Stored(documents=totals["documents"], bytes=totals["stored"], chunks=count)

    def lock_pool_rows(self, cursor, tenant_id) -> None:
        from psycopg import sql

        statement = sql.SQL("SELECT id FROM {} WHERE tenant_id = %s FOR UPDATE").format(
            sql.Identifier(self.get_model("Document")._meta.db_table)
        )
        cursor.execute(statement.as_string(cursor.connection), [tenant_id])
