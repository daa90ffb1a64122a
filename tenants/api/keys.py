"""API keys of the caller's tenant (scope `admin`): list, issue, revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from ..models import ApiKey, ApiKeyScope
from ..services.apikeys import apikey_create, apikey_list, apikey_revoke
from .base import TenantAPIView
from .problems import Problem
from .strict import StrictSerializer


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "tokens_per_hour",
            "tokens_per_day",
        ]


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices), allow_empty=False
    )
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=3650, required=False, allow_null=True
    )
    tokens_per_hour = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="The key's own token budget per hour and model; empty: only the tenant's.",
    )
    tokens_per_day = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="The key's own token budget per UTC day and model; empty: only the tenant's.",
    )


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key itself. Shown once; only its hash is kept.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ApiKeyListView(TenantAPIView):
    scopes = {"*": ApiKeyScope.ADMIN}

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request):
        return Response(ApiKeySerializer(apikey_list(tenant=request.user.tenant), many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request):
        params = ApiKeyCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        key, raw = apikey_create(
            tenant=request.user.tenant,
            scopes=params.validated_data["scopes"],
            expires_in_days=params.validated_data.get("expires_in_days"),
            name=params.validated_data["name"],
            tokens_per_hour=params.validated_data.get("tokens_per_hour"),
            tokens_per_day=params.validated_data.get("tokens_per_day"),
        )
        key.key = raw
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(TenantAPIView):
    scopes = {"*": ApiKeyScope.ADMIN}

    @extend_schema(responses={204: None})
    def delete(self, request, key_id):
        try:
            apikey_revoke(prefix_or_id=str(key_id), tenant=request.user.tenant)
        except ApiKey.DoesNotExist:
            raise Problem(404, "not_found", "No such API key.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
