"""Console documents: multi-file upload through the API's service, live rows, rejection
reasons, delete, another tenant's document as a 404 in every mode, CSRF."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from rag.models import Document, DocumentSource
from tenants.context import tenant_context
from tests.console.test_rag_pages import _document
from tests.helpers import MODES, wait_until

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
HX = {"HTTP_HX_REQUEST": "true"}


def _documents(tenant) -> list[Document]:
    with tenant_context(tenant):
        return list(Document.objects.order_by("title"))


def _sources(tenant) -> int:
    with tenant_context(tenant):
        return DocumentSource.objects.count()


def _wait_ready(client, tenant, document, timeout: float = 180) -> str:
    url = reverse("console:tenant-document-row", args=[tenant.slug, document.id])

    def done() -> str | None:
        html = client.get(url, **HX).content.decode()
        if 'data-status="ready"' in html or 'data-status="failed"' in html:
            return html
        assert 'hx-trigger="every 1s"' in html  # still polling while not done
        return None

    return wait_until(done, timeout=timeout, interval=0.3, message=f"{document.title} not done")


def _upload(client, tenant, *files, **extra):
    url = reverse("console:tenant-document-upload", args=[tenant.slug])
    return client.post(url, {"files": list(files)}, **extra)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_uploading_several_files_at_once_creates_a_document_for_each(
    staff_client, make_tenant, worker
):
    tenant = make_tenant("pool")
    response = _upload(
        staff_client,
        tenant,
        SimpleUploadedFile("zebras.md", b"# Zebras\n\nZebras eat meadow hay twice a day."),
        SimpleUploadedFile("penguins.txt", b"Penguins are fed herring every morning."),
    )
    assert response.status_code == 302
    page = staff_client.get(response["Location"])
    assert set(_messages(page)) == {
        "zebras.md: queued for ingestion.",
        "penguins.txt: queued for ingestion.",
    }
    documents = _documents(tenant)
    assert [d.title for d in documents] == ["Zebras", "penguins"]
    for document in documents:
        html = _wait_ready(staff_client, tenant, document)
        assert "hx-trigger" not in html and "hx-get" not in html.split("<form")[0]
        assert "1/1" in html

    # The same file again is reported as a duplicate and adds nothing.
    again = _upload(
        staff_client,
        tenant,
        SimpleUploadedFile("copy.md", b"# Zebras\n\nZebras eat meadow hay twice a day."),
        follow=True,
    )
    assert _messages(again) == ["copy.md: already stored as “Zebras” (duplicate, not added)."]
    assert len(_documents(tenant)) == 2


def test_an_htmx_upload_answers_with_the_panel_and_its_outcomes(staff_client, make_tenant):
    tenant = make_tenant("pool")
    response = _upload(staff_client, tenant, SimpleUploadedFile("picture.png", PNG), **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="documents-panel"' in html
    assert 'role="status"' in html and "picture.png: rejected (unsupported_type)" in html
    assert "No documents yet." in html


def test_rejected_files_are_reported_with_their_reason_and_store_nothing(
    staff_client, make_tenant, settings
):
    tenant = make_tenant("pool")
    settings.RAG_MAX_UPLOAD_BYTES = 1000
    response = _upload(
        staff_client,
        tenant,
        SimpleUploadedFile("picture.png", PNG, content_type="text/plain"),
        SimpleUploadedFile("empty.txt", b"   \n"),
        SimpleUploadedFile("big.txt", b"words " * 500),
        follow=True,
    )
    assert response.status_code == 200
    messages = _messages(response)
    assert len(messages) == 3
    assert messages[0].startswith("picture.png: rejected (unsupported_type):")
    assert "image/png" in messages[0] and messages[0].endswith("Nothing was stored.")
    assert messages[1].startswith("empty.txt: rejected (empty_document):")
    assert messages[2].replace("\xa0", " ") == (
        "big.txt: rejected, too large (2.9 KB; the limit is 1000 bytes). Nothing was stored."
    )
    html = response.content.decode()
    assert 'class="message error"' in html and "picture.png: rejected" in html
    assert _documents(tenant) == [] and _sources(tenant) == 0


def test_an_upload_without_files_shows_the_error_at_the_input(staff_client, make_tenant):
    tenant = make_tenant("pool")
    response = staff_client.post(reverse("console:tenant-document-upload", args=[tenant.slug]))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_files_error"' in html and "Choose at least one file." in html
    field = re.search(r'<input type="file"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and "id_files_error" in field


def test_delete_removes_the_document_and_its_chunks(staff_client, make_tenant):
    tenant = make_tenant("pool")
    first, _ = _document(tenant, title="First")
    second, _ = _document(tenant, title="Second")
    url = reverse("console:tenant-document-delete", args=[tenant.slug, first.id])
    response = staff_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("console:tenant-documents", args=[tenant.slug])
    assert "Document deleted with all its chunks." in _messages(response)
    assert [d.title for d in _documents(tenant)] == ["Second"]
    # With htmx: an empty body, which replaces the row.
    url = reverse("console:tenant-document-delete", args=[tenant.slug, second.id])
    response = staff_client.post(url, **HX)
    assert response.status_code == 200 and response.content == b""
    assert _documents(tenant) == []
    assert staff_client.post(url).status_code == 404  # already gone


@pytest.mark.parametrize("mode", MODES)
def test_another_tenants_document_is_a_404(mode, staff_client, make_tenant):
    tenant, other = make_tenant(mode), make_tenant(mode)
    _document(tenant, title="Mine")
    theirs, _ = _document(other, title="Theirs")
    row = reverse("console:tenant-document-row", args=[tenant.slug, theirs.id])
    assert staff_client.get(row).status_code == 404
    assert staff_client.get(row, **HX).status_code == 404
    delete = reverse("console:tenant-document-delete", args=[tenant.slug, theirs.id])
    assert staff_client.post(delete).status_code == 404
    assert [d.title for d in _documents(other)] == ["Theirs"]
    page = staff_client.get(reverse("console:tenant-documents", args=[tenant.slug])).content
    assert b"Theirs" not in page and b"Mine" in page
    own_row = reverse("console:tenant-document-row", args=[other.slug, theirs.id])
    assert staff_client.get(own_row).status_code == 200


def test_posts_without_the_csrf_token_are_forbidden(csrf_staff_client, make_tenant):
    tenant = make_tenant("pool")
    document, _ = _document(tenant)
    page = csrf_staff_client.get(reverse("console:tenant-documents", args=[tenant.slug]))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    upload = reverse("console:tenant-document-upload", args=[tenant.slug])
    delete = reverse("console:tenant-document-delete", args=[tenant.slug, document.id])
    ask = reverse("console:playground-ask", args=[tenant.slug])
    note = SimpleUploadedFile("note.txt", b"A note.")
    assert csrf_staff_client.post(upload, {"files": [note]}).status_code == 403
    assert csrf_staff_client.post(delete).status_code == 403
    assert csrf_staff_client.post(delete, **HX).status_code == 403
    assert csrf_staff_client.post(ask, {"question": "hay?", "k": "3"}).status_code == 403
    assert [d.title for d in _documents(tenant)] == ["Zoo handbook"]
    # With the page's token (the form field, or the header htmx sends), the delete goes through.
    response = csrf_staff_client.post(delete, HTTP_X_CSRFTOKEN=token, **HX)
    assert response.status_code == 200 and _documents(tenant) == []
