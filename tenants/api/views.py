"""Control-plane API: who am I."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from .base import ANY_KEY, TenantAPIView


class TenantSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    mode = serializers.CharField(source="isolation_mode")
    status = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


class CurrentTenantView(TenantAPIView):
    """The caller's tenant and the scopes of the key used."""

    scopes = {"GET": ANY_KEY}

    @extend_schema(responses=TenantSerializer)
    def get(self, request):
        tenant = request.user.tenant
        data = {
            "slug": tenant.slug,
            "name": tenant.name,
            "isolation_mode": tenant.isolation_mode,
            "status": tenant.status,
            "scopes": request.auth.scopes,
        }
        return Response(TenantSerializer(data).data)
