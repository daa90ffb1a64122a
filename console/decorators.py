"""How a console view is guarded and finds its tenant, written once.

Every console page is for staff only. A page about one tenant takes the tenant from the URL's
slug; an unknown slug is a 404, whatever the page.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404

from tenants.models import Tenant

staff_only = staff_member_required(login_url="console:login")


def staff_tenant(view):
    """Staff only, and `view(request, tenant, **kwargs)` gets the tenant the URL's `slug` names."""

    @wraps(view)
    def resolved(request, slug, **kwargs):
        return view(request, get_object_or_404(Tenant, slug=slug), **kwargs)

    return staff_only(resolved)
