"""`GET /api/v1/usage`: the caller's tenant's usage against each of its quotas (any scope)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from ..services.usage import usage_summary
from .base import ANY_KEY, TenantAPIView


class RequestUsageSerializer(serializers.Serializer):
    used = serializers.IntegerField(help_text="Requests admitted in the current hour.")
    limit = serializers.IntegerField(help_text="Requests allowed per hour.")
    remaining = serializers.IntegerField()
    reset = serializers.DateTimeField(help_text="When the hourly window starts again.")


class UsedOfLimitSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField()


class GenerationsSerializer(serializers.Serializer):
    running = serializers.IntegerField()
    limit = serializers.IntegerField()


class LedgerTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    embedding_tokens = serializers.IntegerField()
    generation_ms = serializers.IntegerField()


class ModelAnswersSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The generation model's name, as in /v1/models.")
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    generation_ms = serializers.IntegerField()


class RequestsByKindSerializer(serializers.Serializer):
    answer = RequestUsageSerializer()
    search = RequestUsageSerializer()
    ingest = RequestUsageSerializer()
    embeddings = RequestUsageSerializer()


class TokenWindowSerializer(serializers.Serializer):
    used = serializers.IntegerField(help_text="Tokens reserved or used in the current window.")
    limit = serializers.IntegerField(help_text="Tokens allowed per window, for each model.")
    remaining = serializers.IntegerField()
    reset = serializers.DateTimeField(help_text="When the window starts again.")


class ModelTokensSerializer(serializers.Serializer):
    model = serializers.CharField()
    hour = TokenWindowSerializer()
    day = TokenWindowSerializer(help_text="The current UTC day.")


class TokenBudgetsSerializer(serializers.Serializer):
    tokens_per_hour = serializers.IntegerField()
    tokens_per_day = serializers.IntegerField()
    hour_reset = serializers.DateTimeField()
    day_reset = serializers.DateTimeField()
    models = ModelTokensSerializer(
        many=True, help_text="Each model used in the current hour or day, with its windows."
    )


class UsageSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    as_of = serializers.DateTimeField()
    requests = RequestsByKindSerializer()
    last_24h = LedgerTotalsSerializer(help_text="Ledger totals of the last 24 hours.")
    answers_by_model = ModelAnswersSerializer(
        many=True, help_text="Answers of the last 24 hours, per generation model."
    )
    documents = UsedOfLimitSerializer()
    storage_bytes = UsedOfLimitSerializer()
    concurrent_generations = GenerationsSerializer()
    max_tokens_per_response = serializers.IntegerField()
    token_budgets = TokenBudgetsSerializer(
        help_text="Prompt + generated tokens per model against the hourly and daily budgets."
    )


class UsageView(TenantAPIView):
    """Requests this hour per kind, tokens of the last 24 hours, documents, stored bytes,
    running generations and token budgets per model, each against the tenant's quota."""

    scopes = {"GET": ANY_KEY}

    @extend_schema(responses=UsageSerializer)
    def get(self, request):
        return Response(UsageSerializer(usage_summary(tenant=request.user.tenant)).data)
