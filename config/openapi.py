"""The error responses every API operation can give, added to the OpenAPI schema in one place.

The views document their successes; their failures come from shared code (authentication,
scopes, quotas, the strict JSON parser, the outage handler, Django's own refusals), so they are
described here rather than on each view: problem+json under /api/, OpenAI's error shape under
/v1/. A client generated from the schema, and schemathesis' conformance checks in the tests,
then know every status the server may answer.
"""

from __future__ import annotations

from drf_spectacular import openapi
from rest_framework import serializers

from rag.api.openai.errors import OPENAI_PREFIX
from tenants.api.problems import PROBLEM_CONTENT_TYPE
from tenants.api.schema import NOT_ONLY_WHITESPACE

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable.",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {"description": "Per field, for `invalid_request`."},
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
}
OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "description": "OpenAI's error shape.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}

ALWAYS = {
    "401": "No valid API key.",
    "403": "The key lacks the scope, or the tenant is suspended.",
    "405": "The method is not allowed on this path.",
    "429": "A quota or rate limit is exhausted; see `Retry-After`.",
    "503": "A backing server (database, Redis, the queue) is unavailable; see `Retry-After`.",
}
WITH_BODY = {
    "400": "The body is malformed or not valid (JSON strings may not hold U+0000).",
    "422": "The request is well formed but cannot be processed (see `code`).",
    "411": "A chunked body without Content-Length.",
    "413": "The body is over its size limit.",
    "415": "The body's media type is not accepted.",
}
WITH_PARAMETERS = {"404": "No such resource (or document named) for this tenant."}
QUERY_STRING = {
    "400": "A query parameter is not valid, unknown or repeated.",
    "414": "The request line (the query string) is over the server's limit.",
    "422": "A filter in the query is well formed but cannot be applied (see `code`).",
}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, plus the bounds of lists it leaves out: `allow_empty=False` and a
    nested serializer's `max_length` (`many=True`) are checked by DRF but not validators, so
    they never reached the schema."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(
            field, serializers.ListSerializer | serializers.ListField
        ):
            if not field.allow_empty:
                schema["minItems"] = max(schema.get("minItems", 0), 1)
            if getattr(field, "max_length", None) is not None:
                schema.setdefault("maxItems", field.max_length)
        return schema


def non_blank_strings(result, generator, request, public):
    """drf-spectacular postprocessing hook: a request string that may not be blank may not be
    whitespace either (DRF trims it before the blank check), which JSON Schema says with a
    pattern; without it, generated clients and fuzzers send "  " as valid."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            for prop in schema.get("properties", {}).values():
                blank_refused = prop.get("type") == "string" and prop.get("minLength", 0) >= 1
                if blank_refused and not {"enum", "format", "pattern"} & prop.keys():
                    prop["pattern"] = NOT_ONLY_WHITESPACE
    return result


def json_parameters(result, generator, request, public):
    """drf-spectacular postprocessing hook: a query parameter marked `x-json-parameter` holds
    JSON (`?metadata={"lang":"en"}`), which OpenAPI says with `content`, not `schema`."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if schema.pop("x-json-parameter", False):
                    del parameter["schema"]
                    parameter.pop("style", None)
                    parameter.pop("explode", None)
                    parameter["content"] = {"application/json": {"schema": schema}}
    return result


def error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: components `Problem` and `OpenAIError`, and the
    shared error statuses on every operation that does not document them itself."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["OpenAIError"] = OPENAI_ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if path.startswith(OPENAI_PREFIX):
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
        else:
            content = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operation in operations.values():
            statuses = dict(ALWAYS)
            if "requestBody" in operation:
                statuses |= WITH_BODY
            if "{" in path or "document_ids" in _body_properties(operation, schemas):
                statuses |= WITH_PARAMETERS
            if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                statuses |= QUERY_STRING
            responses = operation.setdefault("responses", {})
            for status, description in statuses.items():
                responses.setdefault(status, {"description": description, "content": content})
    return result


def _body_properties(operation: dict, schemas: dict) -> set[str]:
    """The top-level property names of an operation's JSON request body."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return set(schema.get("properties", {}))
