"""API permissions: an active tenant, and the scope the view asks for."""

from __future__ import annotations

from rest_framework import exceptions, permissions

from .authentication import TenantPrincipal


class HasTenant(permissions.BasePermission):
    """An API key of an active tenant. Suspended tenants keep their data but get 403."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, TenantPrincipal):
            raise exceptions.NotAuthenticated(
                "Provide an API key: `Authorization: Bearer <key>`.", code="not_authenticated"
            )
        if not request.user.tenant.is_active:
            raise exceptions.PermissionDenied(
                f"Tenant {request.user.tenant.slug!r} is {request.user.tenant.status}.",
                code="tenant_suspended",
            )
        required = view.required_scopes(request) if hasattr(view, "required_scopes") else set()
        if required is not None and not required & set(request.auth.scopes):
            needed = " or ".join(repr(scope) for scope in sorted(required)) or "a defined"
            raise exceptions.PermissionDenied(
                f"This API key lacks the {needed} scope.", code="insufficient_scope"
            )
        return True
