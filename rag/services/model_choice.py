"""A tenant's default generation model, chosen among the registry's (rag/generation/registry.py).

Here, in the data plane, not in `tenants`: the kernel stores the name (Tenant.default_model) but
knows no model registry, so the name is checked where the registry is.
"""

from __future__ import annotations

from tenants.models import Tenant

from ..generation.registry import UnknownModel, model_names


def tenant_default_model_set(*, tenant: Tenant, model: str) -> Tenant:
    """Answers of `tenant` that name no model use `model` from now on ("": the platform's
    default). Raises UnknownModel for a name the registry does not hold."""
    model = model.strip()
    if model and model not in model_names():
        raise UnknownModel(model)
    tenant.default_model = model
    tenant.save(update_fields=["default_model", "updated_at"])
    return tenant
