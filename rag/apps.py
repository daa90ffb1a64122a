from django.apps import AppConfig


class RagConfig(AppConfig):
    """Data plane: documents and chunks, placed per tenant (pool, bridge or silo)."""

    name = "rag"
    default_auto_field = "django.db.models.BigAutoField"
