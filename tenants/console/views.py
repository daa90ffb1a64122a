"""Console views for the control plane (staff only). Thin: they call selectors and services."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count, Q
from django.shortcuts import render

from ..models import Tenant, TenantStatus


@staff_member_required(login_url="console:login")
def home(request):
    tenants = Tenant.objects.annotate(
        key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))
    )
    by_mode = dict(Tenant.objects.values_list("isolation_mode").annotate(n=Count("id")).order_by())
    context = {
        "tenants": tenants,
        "by_mode": by_mode,
        "suspended": Tenant.objects.filter(status=TenantStatus.SUSPENDED).count(),
    }
    return render(request, "console/home.html", context)
