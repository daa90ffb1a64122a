"""What the OpenAPI schema says about the tenant API's kernel: its bearer keys, and the
pattern of a string that may not be blank.

drf-spectacular registers an extension when its class is defined, so the tenants AppConfig
imports this module in `ready()`.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

# A character Python's str.strip() keeps: JSON Schema's `\s` (ECMAScript's) lacks the
# separators U+001C-U+001F and U+0085, which DRF strips as whitespace.
NOT_ONLY_WHITESPACE = r"[^\s\x1c-\x1f\x85]"


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant API key: `Authorization: Bearer tnt_...`.",
        }
