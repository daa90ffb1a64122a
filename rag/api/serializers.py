"""Request and response shapes of the documents and search API."""

from __future__ import annotations

import json

from rest_framework import serializers

from ..models import Document, DocumentStatus
from ..services.search import MODES


class JSONObjectField(serializers.Field):
    """A JSON object, given either as JSON or (multipart) as a string holding JSON."""

    default_error_messages = {"invalid": "Must be a JSON object."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data) if data.strip() else {}
            except ValueError:
                self.fail("invalid")
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class DocumentSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    chunk_count = serializers.IntegerField(source="chunks_total", read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "external_id",
            "status",
            "progress",
            "chunk_count",
            "error",
            "mime_type",
            "size_bytes",
            "metadata",
            "content_hash",
            "attempts",
            "created_at",
            "updated_at",
        ]

    def get_progress(self, doc) -> dict:
        return {"embedded": doc.chunks_embedded, "total": doc.chunks_total}


class DocumentCreateSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, allow_empty_file=True)  # 422 from the service
    text = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)
    title = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    external_id = serializers.CharField(
        required=False, allow_blank=True, max_length=255, default=""
    )
    metadata = JSONObjectField(required=False, default=dict)

    def validate(self, attrs):
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError(
                "Send exactly one of `file` (multipart) or `text` (JSON)."
            )
        return attrs


class DocumentListParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=DocumentStatus.choices, required=False)
    metadata = JSONObjectField(required=False)


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(min_value=1, max_value=50, default=5)
    mode = serializers.ChoiceField(choices=MODES, default="hybrid")
    filter = JSONObjectField(required=False, default=None, allow_null=True)
    document_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=1000
    )


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    heading_path = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()
    metadata = serializers.DictField()


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    timings = serializers.DictField(child=serializers.FloatField())
