"""Database router: data-plane models follow the tenant context (and refuse to run outside one);
everything else is `default`."""

from __future__ import annotations

from .context import data_alias
from .placement import is_tenant_alias
from .planes import data_plane_label


class TenantRouter:
    def db_for_read(self, model, **hints):
        if model._meta.app_label == data_plane_label():
            return data_alias(model)  # raises TenantNotBound outside a binding
        return "default"

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        return obj1._state.db == obj2._state.db

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if is_tenant_alias(db):
            return app_label == data_plane_label()
        # The app role owns nothing: the platform database is migrated through `owner`.
        return db == "owner"
