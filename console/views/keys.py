"""A tenant's API keys: create (the key shown once), list, revoke.

The plaintext of a new key exists only in the response to the create POST: it is not kept in
the session or anywhere else, and the page is sent with `Cache-Control: no-store` so going back
does not show it again from the browser's cache.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from tenants.models import ApiKey, Tenant
from tenants.services.apikeys import apikey_create, apikey_list, apikey_revoke

from ..decorators import staff_tenant
from ..forms.tenants import KeyCreateForm
from ..htmx import wants_fragment


@never_cache
@staff_tenant
@require_http_methods(["GET", "POST"])
def tenant_keys(request, tenant):
    """The keys page. POST creates a key and shows its plaintext in this response only; an
    htmx request gets the keys panel alone."""
    form = KeyCreateForm(request.POST if request.method == "POST" else None)
    created = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            key, raw = apikey_create(
                tenant=tenant,
                scopes=data["scopes"],
                expires_in_days=data["expires_in_days"],
                name=data["name"],
                tokens_per_hour=data["tokens_per_hour"],
                tokens_per_day=data["tokens_per_day"],
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            created = {"key": key, "raw": raw}
            form = KeyCreateForm()
    context = {
        "nav": "tenants",
        "tab": "keys",
        "tenant": tenant,
        "form": form,
        "created": created,
        "keys": _key_rows(tenant),
    }
    partial = wants_fragment(request)
    template = "console/tenants/_keys_panel.html" if partial else "console/tenants/keys.html"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


@never_cache
@staff_tenant
@require_POST
def tenant_key_revoke(request, tenant, key_id):
    """Revoke one of this tenant's keys; another tenant's key is a 404, like a missing one."""
    try:
        key = apikey_revoke(prefix_or_id=str(key_id), tenant=tenant)
    except ApiKey.DoesNotExist:
        raise Http404("No such key.") from None
    notice = f"Revoked the key {key.prefix}…: requests with it are refused from now on."
    if wants_fragment(request):
        context = {"tenant": tenant, "keys": _key_rows(tenant), "notice": notice}
        return render(request, "console/tenants/_key_list.html", context)
    messages.success(request, notice)
    return redirect("console:tenant-keys", slug=tenant.slug)


def _key_rows(tenant: Tenant) -> list[dict]:
    now = timezone.now()
    return [{"key": key, "state": key.state(now)} for key in apikey_list(tenant=tenant)]
