"""Request shapes of the OpenAI-compatible endpoints (the subset Tenantry serves)."""

from __future__ import annotations

from rest_framework import serializers

from ..serializers import JSONObjectField

CHAT_ROLES = ("system", "developer", "user", "assistant")


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


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=CHAT_ROLES)
    content = MessageContentField()


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(default=False)


class ChatCompletionRequestSerializer(serializers.Serializer):
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

    def validate_messages(self, messages):
        if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
            raise serializers.ValidationError("The last message must be a non-empty user message.")
        return messages


class EmbeddingRequestSerializer(serializers.Serializer):
    input = serializers.JSONField()
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), default="float")
    dimensions = serializers.IntegerField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_blank=True)

    MAX_INPUTS = 256
    MAX_CHARS = 32_000

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
