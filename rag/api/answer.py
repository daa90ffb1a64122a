"""`POST /api/v1/answer`: a grounded answer with numbered citations, optionally streamed."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response

from observability.timing import ANSWER_STAGES, server_timing
from tenants.api.base import TenantAPIView
from tenants.api.problems import Problem
from tenants.api.quota import admit, quota_problem, with_headers
from tenants.api.strict import StrictSerializer
from tenants.models import ApiKeyScope
from tenants.services.quotas import QuotaExceeded

from ..filters import FilterError
from ..generation.gate import GeneratorBusy
from ..generation.model import ModelUnavailable
from ..generation.registry import UnknownModel, model_names
from ..services.answer import AnswerSession, answer_prepare
from ..services.grounding import POLICIES
from ..services.search import UnknownDocuments
from .serializers import MAX_QUESTION_CHARS, JSONObjectField, document_ids_field
from .sse import answer_sse_response


@extend_schema_serializer(component_name="Answer")
class AnswerRequestSerializer(StrictSerializer):
    question = serializers.CharField(max_length=MAX_QUESTION_CHARS)
    k = serializers.IntegerField(min_value=1, max_value=20, default=5)
    filter = JSONObjectField(required=False, default=None, allow_null=True)
    document_ids = document_ids_field()
    max_tokens = serializers.IntegerField(min_value=1, required=False)
    temperature = serializers.FloatField(min_value=0.0, max_value=2.0, required=False)
    stream = serializers.BooleanField(default=False)
    cache = serializers.BooleanField(
        default=True, help_text="Serve a deterministic (temperature 0) answer from the cache."
    )
    policy = serializers.ChoiceField(
        choices=POLICIES,
        required=False,
        help_text="What to do with sentences the sources do not support: `annotate` (mark "
        "them), `strict` (drop them) or `extractive` (quote the sources, no generation). "
        "Unset: the tenant's `answer_policy`.",
    )
    model = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="A model of `GET /v1/models`; unset: the tenant's default model.",
    )

    def validate(self, attrs):
        # After the fields (a malformed request is a 400 whatever it names), before the
        # request is admitted against the quota.
        model = attrs.get("model")
        if model and model not in model_names():
            raise unknown_model(UnknownModel(model))
        return {**attrs, "model": model or None}


def unknown_model(exc: UnknownModel) -> Problem:
    return Problem(404, "model_not_found", str(exc))


class CitationSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    chunk_id = serializers.IntegerField()
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    snippet = serializers.CharField()


class SentenceSerializer(serializers.Serializer):
    text = serializers.CharField()
    cited = serializers.ListField(child=serializers.IntegerField())
    supported_by = serializers.ListField(
        child=serializers.IntegerField(), help_text="Sources that support it, best first."
    )
    support = serializers.FloatField(help_text="Its best support score, 0-1.")
    supported = serializers.BooleanField()
    claim = serializers.BooleanField(
        help_text="False for a sentence that claims nothing (a refusal, list furniture)."
    )
    kept = serializers.BooleanField(help_text="False: dropped from the answer by `strict`.")


class AnswerResponseSerializer(serializers.Serializer):
    answer = serializers.CharField()
    citations = CitationSerializer(many=True)
    usage = serializers.DictField(child=serializers.IntegerField())
    timings = serializers.DictField(child=serializers.FloatField())
    model = serializers.CharField()
    finish_reason = serializers.CharField()
    max_tokens = serializers.IntegerField()
    cached = serializers.BooleanField()
    policy = serializers.ChoiceField(choices=POLICIES)
    grounded = serializers.FloatField(
        help_text="Share of the answer's claims that its sources support (1 when it has none)."
    )
    declined = serializers.BooleanField(
        help_text="The documents do not answer the question: `answer` says so, nothing is "
        "cited, no model ran (`finish_reason` is `declined`)."
    )
    sentences = SentenceSerializer(many=True)
    raw_answer = serializers.CharField(
        required=False, help_text="The generated text before the policy (when a model ran)."
    )


def start_answer(request, params: dict, **extra) -> AnswerSession:
    """Prepare and start an answer for the caller's tenant, mapping refusals to problems.
    Shared with the OpenAI-compatible chat endpoint (which renders errors its own way)."""
    try:
        session = answer_prepare(
            tenant=request.user.tenant,
            api_key=request.auth,
            question=params["question"],
            k=params.get("k", 5),
            filters=params.get("filter"),
            document_ids=params.get("document_ids"),
            max_tokens=params.get("max_tokens"),
            temperature=params.get("temperature"),
            use_cache=params.get("cache", True),
            model=params.get("model"),
            policy=params.get("policy"),
            **extra,
        )
    except FilterError as exc:
        raise Problem(422, "invalid_filter", str(exc)) from exc
    except UnknownModel as exc:
        raise unknown_model(exc) from exc
    except ModelUnavailable as exc:  # over the memory budget: refused until the operator acts
        raise Problem(503, "model_unavailable", str(exc)) from exc
    except UnknownDocuments as exc:
        raise Problem(404, "not_found", str(exc)) from exc
    try:
        return session.start()
    except QuotaExceeded as exc:
        session.close()
        raise quota_problem(exc) from exc
    except GeneratorBusy as exc:
        session.close()
        raise Problem(
            503, "generator_busy", str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from exc


class AnswerView(TenantAPIView):
    scopes = {"POST": ApiKeyScope.QUERY}

    @extend_schema(
        request=AnswerRequestSerializer,
        responses={
            (200, "application/json"): OpenApiResponse(
                AnswerResponseSerializer,
                description="JSON, or with `stream: true` `text/event-stream`: `delta` events "
                '(`{"text"}`), then one `done` event carrying the body below. `answer`, the '
                "`delta` texts and the citations' titles and snippets are plain text, not HTML "
                "(the model can emit markup): clients must escape them before display.",
            ),
            (200, "text/event-stream"): OpenApiResponse(
                {
                    "type": "object",
                    "description": "One event of the stream; `data` is JSON.",
                    "properties": {
                        "event": {"type": "string", "enum": ["delta", "done", "error"]},
                        "data": {"type": "string"},
                    },
                    "required": ["event", "data"],
                },
                description="With `stream: true`: the events above.",
            ),
        },
    )
    def post(self, request):
        params = AnswerRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        rate_headers = admit(request, "answer")
        session = start_answer(request, params.validated_data)
        if not params.validated_data["stream"]:
            body = session.run().result()
            response = Response(body)
            response["Server-Timing"] = server_timing(
                body["timings"], ANSWER_STAGES, cache=body.get("cached")
            )
            return with_headers(response, rate_headers)

        response = answer_sse_response(session, rate_headers)
        # Headers go before the first token: only retrieval is known by then. The `done`
        # event's `timings` has every stage.
        response["Server-Timing"] = server_timing(
            session.search_timings, ANSWER_STAGES[:2], cache=session.cached is not None
        )
        return response
