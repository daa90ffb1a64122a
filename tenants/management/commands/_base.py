"""Shared helpers for tenant commands: look up a tenant by slug with a clear error."""

from __future__ import annotations

from django.core.management.base import CommandError

from ...models import Tenant


def get_tenant(slug: str) -> Tenant:
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"No tenant with slug {slug!r}.") from None
