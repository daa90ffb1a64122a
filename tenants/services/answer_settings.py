"""A tenant's answer settings that the control plane stores: its answer policy.

The policy is the tenant's choice of how its users are answered when the sources do not
support a sentence (tenants.models.AnswerPolicy); the data plane applies it. One setter, so
the console and commands validate alike.
"""

from __future__ import annotations

from ..models import AnswerPolicy, Tenant


def tenant_answer_policy_set(*, tenant: Tenant, policy: str) -> Tenant:
    """Set the tenant's answer policy (annotate, strict or extractive) or raise ValueError."""
    if policy not in AnswerPolicy.values:
        raise ValueError(f"answer_policy must be one of {', '.join(AnswerPolicy.values)}")
    tenant.answer_policy = policy
    tenant.save(update_fields=["answer_policy", "updated_at"])
    return tenant
