"""Tenants: the searchable list, create, and a tenant's settings, quotas, status and deletion.

Every change goes through the same services as the API and the management commands.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import psycopg
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import DatabaseError
from django.db.models import Q
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST
from redis.exceptions import RedisError

from rag.generation.registry import UnknownModel, default_model_name, model_names
from rag.services.model_choice import tenant_default_model_set
from tenants.models import IsolationMode, Tenant, TenantStatus
from tenants.services import provisioning
from tenants.services.answer_settings import tenant_answer_policy_set
from tenants.services.quotas import quota_get, quota_set
from tenants.services.usage import usage_summary

from ..decorators import staff_only, staff_tenant
from ..forms.tenants import (
    MODE_HELP,
    AnswerPolicyForm,
    DefaultModelForm,
    DeleteConfirmForm,
    QuotaForm,
    TenantCreateForm,
)
from ..htmx import wants_fragment
from ..meters import meter

logger = logging.getLogger(__name__)

TENANTS_PER_PAGE = 25


# --- List and create -------------------------------------------------------------------------


@staff_only
def tenant_list(request):
    """The tenants matching `?q=` (slug or name). An htmx request gets only the results."""
    query = request.GET.get("q", "").strip()
    tenants = Tenant.objects.order_by("slug")
    if query:
        tenants = tenants.filter(Q(slug__icontains=query) | Q(name__icontains=query))
    page = Paginator(tenants, TENANTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "nav": "tenants",
        "q": query,
        "page": page,
        "rows": [_tenant_row(tenant) for tenant in page.object_list],
        "any_tenant": bool(page.object_list) or Tenant.objects.exists(),
    }
    partial = wants_fragment(request)
    template = "console/tenants/_results.html" if partial else "console/tenants/list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@staff_only
@require_http_methods(["GET", "POST"])
def tenant_new(request):
    form = TenantCreateForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            tenant = provisioning.tenant_create(
                slug=data["slug"], mode=data["mode"], name=data["name"], silo_dsn=data["silo_dsn"]
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        except provisioning.ProvisioningError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Created the {tenant.isolation_mode} tenant {tenant.slug}.")
            return redirect("console:tenant", slug=tenant.slug)
    return render(request, "console/tenants/new.html", {"nav": "tenants", "form": form})


# --- One tenant ------------------------------------------------------------------------------


@staff_tenant
def tenant_detail(request, tenant):
    return _render_detail(request, tenant)


@staff_tenant
@require_POST
def tenant_quotas(request, tenant):
    form = QuotaForm(request.POST)
    if form.is_valid():
        try:
            quota_set(tenant=tenant, **form.cleaned_data)
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Quotas saved.")
            return redirect("console:tenant", slug=tenant.slug)
    return _render_detail(request, tenant, quota_form=form)


@staff_tenant
@require_POST
def tenant_model(request, tenant):
    form = _model_form(request.POST)
    if form.is_valid():
        try:
            tenant_default_model_set(tenant=tenant, model=form.cleaned_data["default_model"])
        except UnknownModel as exc:
            form.add_error("default_model", str(exc))
        else:
            messages.success(request, "Default model saved.")
            return redirect("console:tenant", slug=tenant.slug)
    return _render_detail(request, tenant, model_form=form)


@staff_tenant
@require_POST
def tenant_answer_policy(request, tenant):
    form = AnswerPolicyForm(request.POST)
    if form.is_valid():
        tenant_answer_policy_set(tenant=tenant, policy=form.cleaned_data["answer_policy"])
        messages.success(request, "Answer policy saved.")
        return redirect("console:tenant", slug=tenant.slug)
    return _render_detail(request, tenant, policy_form=form)


def _model_form(data=None, initial=None) -> DefaultModelForm:
    return DefaultModelForm(
        data, initial=initial, names=model_names(), platform_default=default_model_name()
    )


@staff_tenant
@require_POST
def tenant_suspend(request, tenant):
    tenant = provisioning.tenant_suspend(tenant=tenant)
    messages.success(request, f"Suspended {tenant.slug}: its API calls are refused.")
    return redirect("console:tenant", slug=tenant.slug)


@staff_tenant
@require_POST
def tenant_resume(request, tenant):
    tenant = provisioning.tenant_resume(tenant=tenant)
    messages.success(request, f"Resumed {tenant.slug}: its API keys work again.")
    return redirect("console:tenant", slug=tenant.slug)


@staff_tenant
@require_POST
def tenant_delete(request, tenant):
    form = DeleteConfirmForm(request.POST, slug=tenant.slug)
    if form.is_valid():
        try:
            provisioning.tenant_delete(tenant=tenant)
        except (DatabaseError, psycopg.Error) as exc:
            logger.warning("Console: deleting %s failed", tenant, exc_info=True)
            form.add_error(None, f"Could not delete {tenant.slug}: {exc}")
        else:
            messages.success(request, f"Deleted {tenant.slug} and all of its data.")
            return redirect("console:tenants")
    return _render_detail(request, tenant, delete_form=form)


def _render_detail(
    request, tenant: Tenant, *, quota_form=None, delete_form=None, model_form=None, policy_form=None
):
    context = {
        "nav": "tenants",
        "tab": "settings",
        "tenant": tenant,
        "mode_help": MODE_HELP[tenant.isolation_mode],
        "placement": _placement(tenant),
        "quota_form": quota_form or QuotaForm.for_quota(quota_get(tenant=tenant)),
        "delete_form": delete_form or DeleteConfirmForm(slug=tenant.slug),
        "model_form": model_form or _model_form(initial={"default_model": tenant.default_model}),
        "policy_form": policy_form
        or AnswerPolicyForm(initial={"answer_policy": tenant.answer_policy}),
    }
    return render(request, "console/tenants/detail.html", context)


# --- Presentation helpers --------------------------------------------------------------------


def _placement(tenant: Tenant) -> str:
    """Where the tenant's data lives, in words (a silo DSN is shown without its credentials)."""
    if tenant.isolation_mode == IsolationMode.BRIDGE:
        return f"Schema {tenant.schema_name} in the platform database"
    if tenant.isolation_mode == IsolationMode.SILO:
        if tenant.silo_dsn:
            parts = urlsplit(tenant.silo_dsn)
            server = parts.hostname or "a local socket"
            if parts.port:
                server = f"{server}:{parts.port}"
            return f"Database {tenant.silo_database} on {server}"
        return f"Database {tenant.silo_database} on the platform server"
    return "Shared tables in the platform database (row-level security)"


def _tenant_row(tenant: Tenant) -> dict:
    """A list row: the tenant, its document count and its usage against quota as bars."""
    row = {"tenant": tenant, "documents": None, "meters": [], "note": ""}
    if tenant.status == TenantStatus.PROVISIONING:
        row["note"] = "Being provisioned"
        return row
    try:
        usage = usage_summary(tenant=tenant)
    except (DatabaseError, RedisError):
        logger.warning("Console: usage of %s is unavailable", tenant, exc_info=True)
        row["note"] = "Usage unavailable (its store could not be reached)"
        return row
    requests = usage["requests"]
    row["documents"] = usage["documents"]
    row["meters"] = [
        meter("Answers this hour", requests["answer"]["used"], requests["answer"]["limit"]),
        meter("Searches this hour", requests["search"]["used"], requests["search"]["limit"]),
        meter(
            "Storage",
            usage["storage_bytes"]["used"],
            usage["storage_bytes"]["limit"],
            in_bytes=True,
        ),
    ]
    return row
