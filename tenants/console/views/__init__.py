"""Console views for the control plane (staff only). Thin: forms validate, services act."""

from .keys import tenant_key_revoke, tenant_keys
from .overview import home
from .tenants import (
    tenant_delete,
    tenant_detail,
    tenant_list,
    tenant_new,
    tenant_quotas,
    tenant_resume,
    tenant_suspend,
)

__all__ = [
    "home",
    "tenant_delete",
    "tenant_detail",
    "tenant_key_revoke",
    "tenant_keys",
    "tenant_list",
    "tenant_new",
    "tenant_quotas",
    "tenant_resume",
    "tenant_suspend",
]
