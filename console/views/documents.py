"""Documents: the newest 100 with live status rows, multi-file upload, delete."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from rag.selectors import document_get, document_list
from rag.services.documents import DocumentRejected, document_delete, document_submit
from tenants.models import Tenant

from ..decorators import staff_tenant
from ..forms.dataplane import DocumentUploadForm
from ..htmx import wants_fragment

SHOWN = 100  # newest documents listed


@staff_tenant
@require_safe
@vary_on_headers("HX-Request")
def documents(request, tenant):
    """The page, or (htmx) just its panel: upload form, outcomes and table."""
    return _render(request, tenant, DocumentUploadForm())


@staff_tenant
@require_POST
def document_upload(request, tenant):
    """Each file goes through `document_submit` (as the API and `ingest` do); one message per
    file: created, duplicate, replaced or rejected with its reason (nothing stored then)."""
    form = DocumentUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render(request, tenant, form, status=200 if request.htmx else 400)
    for upload in form.cleaned_data["files"]:
        _submit(request, tenant, upload)
    if request.htmx:
        return _render(request, tenant, DocumentUploadForm())
    return redirect("console:tenant-documents", slug=tenant.slug)


@staff_tenant
@require_safe
def document_row(request, tenant, document_id):
    """One table row; it polls itself while the document is queued or processing."""
    document = document_get(tenant=tenant, document_id=document_id)
    if document is None:
        raise Http404("No such document.")
    return render(request, "console/rag/_document_row.html", {"tenant": tenant, "d": document})


@staff_tenant
@require_POST
def document_remove(request, tenant, document_id):
    if not document_delete(tenant=tenant, document_id=document_id):
        raise Http404("No such document.")
    if request.htmx:
        return HttpResponse("")  # the row is swapped for nothing
    messages.success(request, "Document deleted with all its chunks.")
    return redirect("console:tenant-documents", slug=tenant.slug)


def _submit(request, tenant: Tenant, upload) -> None:
    name = upload.name
    limit = settings.RAG_MAX_UPLOAD_BYTES
    if upload.size > limit:  # judged by its size, before reading it
        messages.error(
            request,
            f"{name}: rejected, too large ({filesizeformat(upload.size)}; "
            f"the limit is {filesizeformat(limit)}). Nothing was stored.",
        )
        return
    try:
        submission = document_submit(tenant=tenant, data=upload.read(), filename=name)
    except DocumentRejected as exc:  # also the tenant's storage quotas
        messages.error(request, f"{name}: rejected ({exc.code}): {exc.detail} Nothing was stored.")
        return
    title = submission.document.title or name
    if submission.outcome == "duplicate":
        messages.info(request, f"{name}: already stored as “{title}” (duplicate, not added).")
    elif submission.outcome == "replaced":
        messages.success(request, f"{name}: replaced “{title}”, queued for ingestion.")
    else:
        messages.success(request, f"{name}: queued for ingestion.")


def _render(request, tenant: Tenant, form: DocumentUploadForm, status: int = 200):
    page = document_list(tenant=tenant, limit=SHOWN, with_metadata=False)
    context = {
        "tenant": tenant,
        "tab": "documents",
        "nav": "tenants",
        "form": form,
        "documents": page.documents,
        "total": page.total,
        "shown": SHOWN,
    }
    template = (
        "console/rag/_documents_panel.html"
        if wants_fragment(request)
        else "console/rag/documents.html"
    )
    return render(request, template, context, status=status)
