"""Request and response shapes of the documents and search API."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from tenants.api.parsers import InvalidJSON, strict_loads
from tenants.api.strict import StrictSerializer

from ..models import Document, DocumentStatus
from ..services.search import GROUP_BY, MODES

MAX_DOCUMENT_IDS = 1000
# A search query, an answer's question, a chat's last user message: far beyond what the
# embedding model reads (256 word pieces), bounded so no request tokenizes a book.
MAX_QUESTION_CHARS = 2000


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.Field):
    """A JSON object, given either as JSON or (multipart, query string) as a string holding
    JSON; the string is read under the API's JSON rules (tenants.api.parsers)."""

    default_error_messages = {"invalid": "Must be a JSON object."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = strict_loads(data) if data.strip() else {}
            except InvalidJSON as exc:
                raise serializers.ValidationError(f"Must be a JSON object: {exc}") from None
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class BoundedListField(serializers.ListField):
    """A ListField that checks the raw list's type and length before validating any item, and
    reports only the first bad item.

    DRF's ListField validates every item first, collecting one error per item, and checks the
    length last: 250,000 short strings as `document_ids` took 7.7 s and answered 8.6 MB, and 5
    million grew the web worker to 7.6 GB.
    """

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if not self.allow_empty and not data:
            self.fail("empty")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        if self.min_length is not None and len(data) < self.min_length:
            self.fail("min_length", min_length=self.min_length)
        return self.run_child_validation(data)

    def run_child_validation(self, data):
        result = []
        for index, item in enumerate(data):
            try:
                result.append(self.child.run_validation(item))
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({index: exc.detail}) from None
        return result


def document_ids_field() -> BoundedListField:
    """`document_ids` of search and answer requests: at most MAX_DOCUMENT_IDS UUIDs."""
    return BoundedListField(
        child=serializers.UUIDField(), required=False, max_length=MAX_DOCUMENT_IDS
    )


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


class _DocumentFields(StrictSerializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    external_id = serializers.CharField(
        required=False, allow_blank=True, max_length=255, default=""
    )
    metadata = JSONObjectField(required=False, default=dict)


@extend_schema_serializer(component_name="DocumentText")
class DocumentTextSerializer(_DocumentFields):
    """The JSON upload as the schema describes it (validation is DocumentCreateSerializer's);
    text with nothing but whitespace is refused with 422 by the service."""

    text = serializers.CharField()


@extend_schema_serializer(component_name="DocumentFile")
class DocumentFileSerializer(_DocumentFields):
    """The multipart upload as the schema describes it; an empty or unreadable file is refused
    with 415 or 422 by the service."""

    file = serializers.FileField()


class DocumentCreateSerializer(_DocumentFields):
    file = serializers.FileField(required=False, allow_empty_file=True)  # 422 from the service
    text = serializers.CharField(required=False, trim_whitespace=False, allow_blank=True)

    def validate(self, attrs):
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError(
                "Send exactly one of `file` (multipart) or `text` (JSON)."
            )
        return attrs


@extend_schema_field({"type": "object", "additionalProperties": {}, "x-json-parameter": True})
class JSONObjectParameter(JSONObjectField):
    """A JSON object in the query string, as one parameter holding JSON (config.openapi
    describes it so), not exploded into one parameter per key."""


class DocumentListParams(serializers.Serializer):
    """`GET /documents` query parameters. Unknown ones are refused: a misspelt filter would
    otherwise list every document."""

    status = serializers.ChoiceField(choices=DocumentStatus.choices, required=False)
    metadata = JSONObjectParameter(required=False, help_text="Metadata the documents must hold.")
    limit = serializers.IntegerField(min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(f"Unknown query parameters: {', '.join(unknown)}.")
        return attrs


class DocumentPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DocumentSerializer(many=True)


@extend_schema_serializer(component_name="Search")
class SearchRequestSerializer(StrictSerializer):
    query = serializers.CharField(max_length=MAX_QUESTION_CHARS)
    k = serializers.IntegerField(min_value=1, max_value=50, default=5)
    mode = serializers.ChoiceField(choices=MODES, default="hybrid")
    filter = JSONObjectField(required=False, default=None, allow_null=True)
    document_ids = document_ids_field()
    group_by = serializers.ChoiceField(
        choices=GROUP_BY,
        default="chunk",
        help_text="`document`: `k` documents, each with its best chunks (`documents`).",
    )
    chunks_per_document = serializers.IntegerField(min_value=1, max_value=10, default=3)


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    heading_path = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()
    metadata = serializers.DictField()


class DocumentChunkSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    heading_path = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()


class DocumentHitSerializer(serializers.Serializer):
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    score = serializers.FloatField(
        help_text="Its rank: the evidence of its best three chunks, each worth half the one "
        "before (reciprocal ranks; fused scores in hybrid search)."
    )
    metadata = serializers.DictField()
    chunks = DocumentChunkSerializer(many=True)


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    documents = DocumentHitSerializer(
        many=True, required=False, help_text="With `group_by: document` only."
    )
    timings = serializers.DictField(child=serializers.FloatField())
