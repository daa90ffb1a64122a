"""OpenAPI descriptions of the OpenAI-compatible endpoints' responses.

Their views build plain dicts in OpenAI's shapes (no response serializers), so the shapes are
written down here, kept next to the views that produce them; the fuzzing test checks every
response against them.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema

from .serializers import ChatCompletionRequestSerializer, EmbeddingRequestSerializer

_USAGE = {
    "type": "object",
    "properties": {
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
    },
    "required": ["prompt_tokens", "total_tokens"],
}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    """An object whose listed properties are required (all of them unless named)."""
    return {"type": "object", "properties": properties, "required": required or [*properties]}


def _list_of(item: dict, **extra) -> dict:
    """OpenAI's `{"object": "list", "data": [...]}` envelope."""
    return _object(
        {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": item},
            **extra,
        }
    )


MODEL_LIST = _list_of(
    _object(
        {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        }
    )
)
EMBEDDING_LIST = _list_of(
    _object(
        {
            "object": {"type": "string", "enum": ["embedding"]},
            "index": {"type": "integer"},
            "embedding": {
                "description": "Floats, or base64 of little-endian float32.",
                "oneOf": [
                    {"type": "array", "items": {"type": "number"}},
                    {"type": "string", "format": "byte"},
                ],
            },
        }
    ),
    model={"type": "string"},
    usage=_USAGE,
)
CHAT_COMPLETION = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "properties": {
                            "role": {"type": "string", "enum": ["assistant"]},
                            "content": {
                                "type": "string",
                                "description": "Plain text: clients must escape it.",
                            },
                        },
                        "required": ["role", "content"],
                    },
                    "finish_reason": {"type": "string", "nullable": True},
                },
                "required": ["index", "message"],
            },
        },
        "usage": _USAGE,
        "citations": {"type": "array", "items": {"type": "object"}},
        "timings": {"type": "object"},
        "cached": {"type": "boolean"},
    },
    "required": ["id", "object", "created", "model", "choices"],
}
_STREAM = {
    "type": "object",
    "description": "One event: `data` is a `chat.completion.chunk` object as JSON, the last "
    "one `[DONE]`.",
    "properties": {"data": {"type": "string"}},
    "required": ["data"],
}

models_schema = extend_schema(responses={200: OpenApiResponse(MODEL_LIST)})
embeddings_schema = extend_schema(
    request=EmbeddingRequestSerializer, responses={200: OpenApiResponse(EMBEDDING_LIST)}
)
chat_schema = extend_schema(
    request=ChatCompletionRequestSerializer,
    responses={
        (200, "application/json"): OpenApiResponse(CHAT_COMPLETION),
        (200, "text/event-stream"): OpenApiResponse(_STREAM, description="With `stream: true`."),
        404: OpenApiResponse(
            {"$ref": "#/components/schemas/OpenAIError"},
            description="`model` names no model of `/v1/models` (`model_not_found`).",
        ),
    },
)
