"""Request shapes of the OpenAI-compatible endpoints (the subset Tenantry serves)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from tenants.api.schema import NOT_ONLY_WHITESPACE
from tenants.api.strict import StrictSerializer

from ...generation.registry import UnknownModel, model_names
from ...models import EMBEDDING_DIMENSIONS
from ..serializers import MAX_QUESTION_CHARS, JSONObjectField
from .errors import OpenAIError

CHAT_ROLES = ("system", "developer", "user", "assistant")
INSTRUCTION_ROLES = ("system", "developer")  # their messages are the app's instructions
# Any other message, and the system/developer messages together (they are one instruction
# block, tokenized whole into every prompt): four windows of the model, and a bound on the
# tokenizing one request can ask for.
MAX_MESSAGE_CHARS = 32_000


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": MAX_MESSAGE_CHARS},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "enum": ["text"]},
                        "text": {"type": "string", "maxLength": MAX_MESSAGE_CHARS},
                    },
                    "required": ["type", "text"],
                },
            },
        ]
    }
)
class MessageContentField(serializers.Field):
    """A message's content: a string, or a list of `{"type": "text", "text": ...}` parts."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, list):
            texts = []
            for part in data:
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise serializers.ValidationError("Only text content parts are supported.")
                texts.append(str(part.get("text", "")))
            return "\n".join(texts)
        raise serializers.ValidationError("Content must be a string or a list of text parts.")

    def to_representation(self, value):
        return value


class ChatMessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=CHAT_ROLES)
    content = MessageContentField()


class StreamOptionsSerializer(StrictSerializer):
    include_usage = serializers.BooleanField(default=False)


@extend_schema_serializer(component_name="ChatCompletion")
class ChatCompletionRequestSerializer(StrictSerializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    messages = ChatMessageSerializer(many=True, allow_empty=False, max_length=200)
    max_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_completion_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    temperature = serializers.FloatField(
        min_value=0.0, max_value=2.0, required=False, allow_null=True
    )
    stream = serializers.BooleanField(default=False, allow_null=True)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    n = serializers.IntegerField(min_value=1, max_value=1, required=False, allow_null=True)
    # Tenantry's retrieval options (ignored by other servers, harmless to send).
    k = serializers.IntegerField(min_value=1, max_value=20, default=5)
    filter = JSONObjectField(required=False, default=None, allow_null=True)

    def validate(self, attrs):
        # OpenAI's own status and code for a model it does not serve: after the fields (a
        # malformed request is a 400 whatever it names), before the request is admitted.
        model = attrs.get("model")
        if model and model not in model_names():
            raise OpenAIError(404, "model_not_found", str(UnknownModel(model)), param="model")
        return {**attrs, "model": model or None}

    def validate_messages(self, messages):
        if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
            # 422: well-formed messages (a schema cannot say which comes last).
            raise OpenAIError(
                422,
                "invalid_messages",
                "The last message must be a non-empty user message.",
                param="messages",
            )
        # 400 for a message longer than any message may be (a schema can say it), 422 for the
        # limits that depend on the message's place (a schema cannot).
        for index, message in enumerate(messages):
            if len(message["content"]) > MAX_MESSAGE_CHARS:
                raise too_long(400, f"messages[{index}].content", MAX_MESSAGE_CHARS, message)
        if len(messages[-1]["content"]) > MAX_QUESTION_CHARS:
            raise too_long(
                422, f"messages[{len(messages) - 1}].content", MAX_QUESTION_CHARS, messages[-1]
            )
        instructions = "".join(m["content"] for m in messages if m["role"] in INSTRUCTION_ROLES)
        if len(instructions) > MAX_MESSAGE_CHARS:
            raise too_long(422, "messages", MAX_MESSAGE_CHARS, {"content": instructions})
        return messages


def too_long(status: int, param: str, limit: int, message: dict) -> OpenAIError:
    """OpenAI's own code for an over-long message (its clients know it)."""
    return OpenAIError(
        status,
        "string_above_max_length",
        f"Invalid '{param}': too long. Expected at most {limit} characters, "
        f"but got {len(message['content'])}.",
        param=param,
    )


MAX_INPUTS = 256
MAX_CHARS = 32_000
_NON_BLANK_INPUT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_CHARS,
    "pattern": NOT_ONLY_WHITESPACE,
}


@extend_schema_field(
    {
        "oneOf": [
            _NON_BLANK_INPUT,
            {"type": "array", "items": _NON_BLANK_INPUT, "minItems": 1, "maxItems": MAX_INPUTS},
        ]
    }
)
class EmbeddingInputField(serializers.JSONField):
    """`input`: one string or a list of strings (checked by the serializer's validate_input)."""


@extend_schema_field({"type": "integer", "enum": [EMBEDDING_DIMENSIONS], "nullable": True})
class DimensionsField(serializers.IntegerField):
    """`dimensions`: the model's own, or none (anything else is refused by the view)."""


@extend_schema_serializer(component_name="Embedding")
class EmbeddingRequestSerializer(StrictSerializer):
    input = EmbeddingInputField()
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), default="float")
    dimensions = DimensionsField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_blank=True)

    MAX_INPUTS = MAX_INPUTS
    MAX_CHARS = MAX_CHARS

    def validate_input(self, value):
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not texts:
            raise serializers.ValidationError("Must be a string or a non-empty list of strings.")
        if len(texts) > self.MAX_INPUTS:  # the count first: nothing is looked at beyond it
            raise serializers.ValidationError(f"At most {self.MAX_INPUTS} inputs per request.")
        if not all(isinstance(t, str) for t in texts):
            raise serializers.ValidationError(
                "Only strings are accepted (token arrays are not: this model has its own "
                "tokenizer)."
            )
        if any(not t.strip() for t in texts):
            raise serializers.ValidationError("Inputs must not be empty.")
        if any(len(t) > self.MAX_CHARS for t in texts):
            raise serializers.ValidationError(
                f"Each input is limited to {self.MAX_CHARS} characters."
            )
        return texts
