from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    """Control plane: tenants, their placement, API keys and the tenant context."""

    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            after_response,
            roles,  # noqa: F401  (checks the role of every new app connection)
        )
        from .api import schema  # noqa: F401  (the API keys' scheme in the OpenAPI schema)

        after_response.connect()

        post_migrate.connect(_grant_platform_tables, sender=self)


def _grant_platform_tables(sender, using, **kwargs) -> None:
    """After `migrate` (as the owner), the app role gets row access to the platform tables."""
    if using == "owner":
        from .services.dataplane import grant_app_access

        grant_app_access(alias="owner", schema="public")
