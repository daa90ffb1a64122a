"""Placeholder views, replaced by the data-plane console pages (work in progress)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404


@staff_member_required(login_url="console:login")
def playground(request):
    raise Http404("not built yet")


@staff_member_required(login_url="console:login")
def documents(request, slug):
    raise Http404("not built yet")


@staff_member_required(login_url="console:login")
def usage(request, slug):
    raise Http404("not built yet")


@staff_member_required(login_url="console:login")
def queries(request, slug):
    raise Http404("not built yet")
