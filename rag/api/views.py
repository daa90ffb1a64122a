"""Documents and search API. Views validate and delegate to services and selectors, each of
which binds the caller's tenant for its own short transaction, so every query below reaches
only the caller's store."""

from __future__ import annotations

from dataclasses import asdict

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from observability.timing import SEARCH_STAGES, server_timing
from tenants.api.base import TenantAPIView
from tenants.api.parsers import InvalidJSON, strict_loads
from tenants.api.problems import Problem
from tenants.api.quota import admit, with_headers
from tenants.api.strict import single_valued
from tenants.models import ApiKeyScope, UsageKind
from tenants.services.usage import usage_record

from ..filters import FilterError
from ..selectors import document_get, document_list
from ..services.documents import DocumentRejected, document_delete, document_submit
from ..services.search import UnknownDocuments, search_run
from .serializers import (
    DocumentCreateSerializer,
    DocumentFileSerializer,
    DocumentListParams,
    DocumentPageSerializer,
    DocumentSerializer,
    DocumentTextSerializer,
    SearchRequestSerializer,
    SearchResponseSerializer,
)


class DocumentPagination(LimitOffsetPagination):
    """DRF's next/previous links for `?limit=&offset=` (validated by DocumentListParams, not
    silently clamped); the page itself comes from the selector, which counts and slices
    inside the tenant's binding."""

    def window(self, request, *, limit: int, offset: int) -> tuple[int, int]:
        self.request, self.limit, self.offset = request, limit, offset
        return offset, limit

    def respond(self, total: int, data: list):
        self.count = total
        return self.get_paginated_response(data)


# Room for multipart framing and the other fields around a document of the largest size.
FRAMING_BYTES = 64 * 1024


def _require_length(request) -> None:
    """411 for a body without a Content-Length (chunked transfer encoding).

    Django reads such a body as empty (its stream is limited to the declared length, 0), so a
    chunked upload would be refused for a missing file, or stored as nothing; and the size
    limit is judged from the header before the body is read. The body is never read.
    """
    if not request.META.get("CONTENT_LENGTH") and request.META.get("HTTP_TRANSFER_ENCODING"):
        raise Problem(
            411,
            "length_required",
            "Uploads need a Content-Length header; chunked transfer encoding is not accepted.",
        )


def _reject_oversized(request) -> None:
    """413 from the Content-Length header, before a byte of the body is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.RAG_MAX_UPLOAD_BYTES + FRAMING_BYTES:
        raise Problem(
            413,
            "payload_too_large",
            f"Documents are limited to {settings.RAG_MAX_UPLOAD_BYTES} bytes.",
        )


class DocumentJSONParser(BaseParser):
    """`{"text": ..., "metadata": ...}` uploads, read under the API's JSON rules (strict_loads:
    no NaN or infinities, no `\\u0000`, bounded nesting: 400 `invalid_json`) like every other
    API body, but sized for a document: up to DATA_UPLOAD_MAX_MEMORY_SIZE (413 `body_too_large`
    past it, as Django answers), not API_JSON_MAX_BYTES.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # None: no limit, as for Django
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise Problem(413, "body_too_large", f"Bodies are limited to {limit} bytes.")
        try:
            return strict_loads(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Problem(400, "invalid_json", f"The body is not UTF-8: {exc}.") from None
        except InvalidJSON as exc:
            raise Problem(400, "invalid_json", str(exc)) from None


class DocumentListView(TenantAPIView):
    scopes = {"GET": ApiKeyScope.QUERY, "POST": ApiKeyScope.INGEST}
    parser_classes = [DocumentJSONParser, MultiPartParser]

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":
            _require_length(request)
            _reject_oversized(request)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="api_v1_documents_list",
        parameters=[DocumentListParams],
        responses=DocumentPageSerializer,
    )
    def get(self, request):
        params = DocumentListParams(data=single_valued(request.query_params))
        params.is_valid(raise_exception=True)
        paginator = DocumentPagination()
        offset, limit = paginator.window(
            request, limit=params.validated_data["limit"], offset=params.validated_data["offset"]
        )
        try:
            page = document_list(
                tenant=request.user.tenant,
                status=params.validated_data.get("status"),
                metadata=params.validated_data.get("metadata"),
                offset=offset,
                limit=limit,
            )
        except FilterError as exc:
            raise Problem(422, "invalid_filter", str(exc)) from exc
        return paginator.respond(page.total, DocumentSerializer(page.documents, many=True).data)

    @extend_schema(
        request={
            "application/json": DocumentTextSerializer,
            "multipart/form-data": DocumentFileSerializer,
        },
        responses={202: DocumentSerializer, 200: DocumentSerializer},
    )
    def post(self, request):
        rate_limit = admit(request, UsageKind.INGEST)
        params = DocumentCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data.get("file")
        if upload is not None:
            if upload.size > settings.RAG_MAX_UPLOAD_BYTES:
                raise Problem(
                    413,
                    "payload_too_large",
                    f"Documents are limited to {settings.RAG_MAX_UPLOAD_BYTES} bytes.",
                )
            data, filename = upload.read(), upload.name
        else:
            data, filename = params.validated_data["text"].encode(), ""
        try:
            submission = document_submit(
                tenant=request.user.tenant,
                data=data,
                filename=filename,
                title=params.validated_data["title"],
                metadata=params.validated_data["metadata"],
                external_id=params.validated_data["external_id"],
            )
        except DocumentRejected as exc:  # storage quotas too (413 / 429)
            raise Problem(exc.status, exc.code, exc.detail) from exc
        usage_record(tenant=request.user.tenant, api_key=request.auth, kind=UsageKind.INGEST)
        body = DocumentSerializer(submission.document).data
        body["outcome"] = submission.outcome
        code = status.HTTP_200_OK if submission.outcome == "duplicate" else status.HTTP_202_ACCEPTED
        return with_headers(Response(body, status=code), rate_limit)


class DocumentDetailView(TenantAPIView):
    scopes = {"GET": ApiKeyScope.QUERY, "DELETE": ApiKeyScope.INGEST}

    @extend_schema(responses=DocumentSerializer)
    def get(self, request, document_id):
        document = document_get(tenant=request.user.tenant, document_id=document_id)
        if document is None:
            raise Problem(404, "not_found", "No such document.")
        return Response(DocumentSerializer(document).data)

    @extend_schema(responses={204: None})
    def delete(self, request, document_id):
        if not document_delete(tenant=request.user.tenant, document_id=document_id):
            raise Problem(404, "not_found", "No such document.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class SearchView(TenantAPIView):
    scopes = {"POST": ApiKeyScope.QUERY}

    @extend_schema(request=SearchRequestSerializer, responses=SearchResponseSerializer)
    def post(self, request):
        rate_limit = admit(request, UsageKind.SEARCH)
        params = SearchRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        query, mode = params.validated_data["query"], params.validated_data["mode"]
        try:
            result = search_run(
                tenant=request.user.tenant,
                query=query,
                k=params.validated_data["k"],
                mode=mode,
                filters=params.validated_data["filter"],
                document_ids=params.validated_data.get("document_ids"),
                group_by=params.validated_data["group_by"],
                chunks_per_document=params.validated_data["chunks_per_document"],
                api_key=request.auth,
                source="api",
            )
        except FilterError as exc:
            raise Problem(422, "invalid_filter", str(exc)) from exc
        except UnknownDocuments as exc:
            raise Problem(404, "not_found", str(exc)) from exc
        body = {"results": [hit.__dict__ for hit in result.hits], "timings": result.timings}
        if result.documents is not None:
            body["documents"] = [asdict(d) for d in result.documents]
        response = Response(SearchResponseSerializer(body).data)
        response["Server-Timing"] = server_timing(result.timings, SEARCH_STAGES)
        return with_headers(response, rate_limit)
