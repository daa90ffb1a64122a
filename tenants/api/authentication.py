"""Bearer API-key authentication for the tenant API."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from ..models import ApiKey, Tenant
from ..services.apikeys import ApiKeyError, apikey_authenticate, looks_like_key

QUERY_KEY_NAMES = {"api_key", "apikey", "key", "token", "access_token", "auth"}


@dataclass(frozen=True)
class TenantPrincipal:
    """`request.user` for API calls: the tenant the key belongs to."""

    tenant: Tenant
    api_key: ApiKey
    is_authenticated: bool = True
    is_staff: bool = False

    def __str__(self) -> str:
        return f"{self.tenant.slug}:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer tnt_...`. Keys in the query string are refused: URLs are logged."""

    keyword = "Bearer"

    def authenticate(self, request):
        for name, values in request.query_params.lists():
            if name.lower() in QUERY_KEY_NAMES or any(looks_like_key(v) for v in values):
                raise exceptions.AuthenticationFailed(
                    "API keys are not accepted in the query string; use the Authorization header.",
                    code="api_key_in_query_string",
                )
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Use `Authorization: Bearer <key>`.", code="invalid_authorization_header"
            )
        try:
            key = apikey_authenticate(raw=header[1].decode("latin-1"))
        except ApiKeyError as exc:
            raise exceptions.AuthenticationFailed(str(exc), code=exc.code) from exc
        return TenantPrincipal(tenant=key.tenant, api_key=key), key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="tenantry"'
