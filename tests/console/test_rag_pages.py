"""Console data-plane pages: staff-only access, every page and htmx fragment, the chunk view,
usage numbers and the query log."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from rag.models import Chunk, Document
from tenants.context import tenant_context
from tests.helpers import MODES, bearer

HX = {"HTTP_HX_REQUEST": "true"}


def _document(tenant, *, title="Zoo handbook", status="ready", text="Zebras eat meadow hay."):
    """A document with one chunk, written straight into the tenant's store."""
    with tenant_context(tenant):
        document = Document.objects.create(
            title=title,
            content_hash=hashlib.sha256(f"{tenant.slug}{title}".encode()).hexdigest(),
            mime_type="text/markdown",
            size_bytes=len(text),
            status=status,
            chunks_total=1,
            chunks_embedded=1 if status == "ready" else 0,
        )
        chunk = Chunk.objects.create(
            document=document,
            ordinal=0,
            heading_path="Zoo > Zebras",
            text=text,
            token_count=5,
            embedding=[0.1] * 384,
        )
    return document, chunk


@pytest.fixture
def stocked(make_tenant):
    tenant = make_tenant("pool")
    document, chunk = _document(tenant)
    return tenant, document, chunk


def _routes(tenant, document, chunk):
    """(method, url) of every data-plane console page, fragment and action."""
    slug = tenant.slug
    return [
        ("get", reverse("console:playground")),
        ("get", reverse("console:tenant-documents", args=[slug])),
        ("get", reverse("console:tenant-document-row", args=[slug, document.id])),
        ("get", reverse("console:tenant-usage", args=[slug])),
        ("get", reverse("console:tenant-queries", args=[slug])),
        ("get", reverse("console:tenant-chunk", args=[slug, chunk.id])),
        ("post", reverse("console:tenant-document-upload", args=[slug])),
        ("post", reverse("console:tenant-document-delete", args=[slug, document.id])),
        ("post", reverse("console:playground-ask", args=[slug])),
    ]


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_anonymous_and_non_staff_users_are_sent_to_login(who, stocked, user_client):
    client = Client() if who == "anonymous" else user_client
    tenant, document, chunk = stocked
    for method, url in _routes(tenant, document, chunk):
        response = getattr(client, method)(url, {"question": "hay?", "k": "3"})
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login/?next="), url
    with tenant_context(tenant):
        assert Document.objects.filter(pk=document.pk).exists()  # the delete did nothing


def test_state_changes_refuse_get(staff_client, stocked):
    tenant, document, chunk = stocked
    for method, url in _routes(tenant, document, chunk):
        if method == "post":
            assert staff_client.get(url).status_code == 405, url


def test_documents_page_lists_the_tenants_documents(staff_client, stocked, make_tenant):
    tenant, document, _ = stocked
    other = make_tenant("pool")
    _document(other, title="Someone else's secrets")
    response = staff_client.get(reverse("console:tenant-documents", args=[tenant.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'aria-current="page"' in html  # the tenant's tabs
    assert "Zoo handbook" in html and "text/markdown" in html and "1/1" in html
    assert 'data-status="ready"' in html and "Someone else" not in html
    assert re.search(r'<input type="file" name="files"[^>]* multiple', html)
    assert '<label for="id_files">' in html and 'enctype="multipart/form-data"' in html
    row = reverse("console:tenant-document-row", args=[tenant.slug, document.id])
    assert f'hx-get="{row}"' not in html  # ready: not polling

    fragment = staff_client.get(
        reverse("console:tenant-documents", args=[tenant.slug]), **HX
    ).content.decode()
    assert fragment.lstrip().startswith('<section id="documents-panel"')
    assert "Zoo handbook" in fragment and "<html" not in fragment


def test_documents_page_empty_state(staff_client, make_tenant):
    tenant = make_tenant("bridge")
    html = staff_client.get(reverse("console:tenant-documents", args=[tenant.slug])).content
    assert b"No documents yet." in html and b"<table>" not in html


def test_a_document_row_polls_while_in_progress_and_stops_when_done(staff_client, make_tenant):
    tenant = make_tenant("pool")
    document, _ = _document(tenant, status="processing")
    with tenant_context(tenant):
        Document.objects.filter(pk=document.pk).update(chunks_total=5, chunks_embedded=3)
    url = reverse("console:tenant-document-row", args=[tenant.slug, document.id])
    html = staff_client.get(url, **HX).content.decode()
    assert html.lstrip().startswith("<tr") and "<html" not in html
    assert f'hx-get="{url}"' in html and 'hx-trigger="every 1s"' in html
    assert 'hx-swap="outerHTML"' in html and "3/5" in html and "Processing" in html

    with tenant_context(tenant):
        Document.objects.filter(pk=document.pk).update(
            status="failed", error="pdf_timeout: parsing took too long"
        )
    html = staff_client.get(url, **HX).content.decode()
    assert "hx-trigger" not in html
    assert 'data-status="failed"' in html and "Reason: pdf_timeout: parsing took too long" in html


def test_chunk_view_page_and_fragment(staff_client, stocked, make_tenant):
    tenant, _, chunk = stocked
    url = reverse("console:tenant-chunk", args=[tenant.slug, chunk.id])
    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html and "Zebras eat meadow hay." in html
    assert "Zoo handbook" in html and "Zoo &gt; Zebras" in html
    fragment = staff_client.get(url, **HX)
    assert fragment.status_code == 200 and fragment["Vary"] and "HX-Request" in fragment["Vary"]
    assert "<html" not in fragment.content.decode()
    assert "Zebras eat meadow hay." in fragment.content.decode()
    # A crafted URL: another tenant's chunk id under this tenant's slug, and the reverse.
    other = make_tenant("pool")
    _, foreign = _document(other, title="Other", text="The other tenant's private text.")
    foreign_url = reverse("console:tenant-chunk", args=[tenant.slug, foreign.id])
    assert staff_client.get(foreign_url).status_code == 404
    assert staff_client.get(foreign_url, **HX).status_code == 404
    crossed = reverse("console:tenant-chunk", args=[other.slug, chunk.id])
    assert staff_client.get(crossed).status_code == 404
    ghost = reverse("console:tenant-chunk", args=["no-such-tenant", chunk.id])
    assert staff_client.get(ghost).status_code == 404


@pytest.mark.parametrize("mode", MODES)
def test_another_tenants_chunk_is_a_404_in_every_mode(mode, staff_client, make_tenant):
    tenant, other = make_tenant(mode), make_tenant(mode)
    _, mine = _document(tenant, text="My own words.")
    for n in range(3):
        _, foreign = _document(other, title=f"Other {n}", text=f"Their private text {n}.")
    url = reverse("console:tenant-chunk", args=[tenant.slug, foreign.id])
    assert staff_client.get(url).status_code == 404
    ok = reverse("console:tenant-chunk", args=[other.slug, foreign.id])
    assert b"Their private text 2." in staff_client.get(ok).content
    # Bridge and silo stores number their chunks on their own, so the same id may exist in
    # both: under this tenant's slug it is always this tenant's chunk.
    html = staff_client.get(reverse("console:tenant-chunk", args=[tenant.slug, mine.id])).content
    assert b"My own words." in html and b"Their private" not in html


def test_usage_page_shows_the_numbers(staff_client, make_tenant):
    from tenants.services.quotas import quota_admit, quota_set
    from tenants.services.usage import usage_record

    tenant = make_tenant("pool")
    quota_set(tenant=tenant, search_per_hour=20)
    quota_admit(tenant=tenant, kind="search")
    usage_record(tenant=tenant, kind="search", embedding_tokens=5)
    usage_record(tenant=tenant, kind="answer", prompt_tokens=120, completion_tokens=30)
    usage_record(tenant=tenant, kind="answer", prompt_tokens=80, completion_tokens=20)
    _document(tenant)

    response = staff_client.get(reverse("console:tenant-usage", args=[tenant.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "vendor/chart-4.6.1.umd.min.js" in html and 'id="usage-chart"' in html
    data = json.loads(
        re.search(
            r'<script id="usage-data" type="application/json">(.*?)</script>', html, re.S
        ).group(1)
    )
    assert len(data["labels"]) == 168 and len(data["tokens"]) == 168
    assert sum(data["requests"]["answer"]) == 2 and sum(data["requests"]["search"]) == 1
    assert sum(data["tokens"]) == 255 and data["tokens"][-1] == 255  # this hour, the last
    # The accessible table: today's row has the same numbers.
    daily = html[html.index('id="daily-heading"') :]
    today = re.search(r"<tr>\s*<th scope=\"row\">[^<]*</th>(.*?)</tr>", daily, re.S).group(1)
    cells = re.findall(r'<td class="num">(\d+)</td>', today)
    assert cells == ["2", "1", "0", "0", "200", "50", "5", "255"]
    # Headroom: searches this hour, 1 of 20 used, 19 left, a 5% bar.
    searches = re.search(r"<th scope=\"row\">Searches<.*?</tr>", html, re.S).group(0)
    assert re.findall(r'<td class="num">(\d+)</td>', searches) == ["1", "20", "19"]
    assert 'data-percent="5"' in searches and 'aria-label="5% used"' in searches
    documents = re.search(r"<th scope=\"row\">Documents<.*?</tr>", html, re.S).group(0)
    assert re.findall(r'<td class="num">(\d+)</td>', documents)[:2] == ["1", "10000"]


def test_query_log_lists_a_question_asked_through_the_api(staff_client, api, make_tenant, make_key):
    tenant, other = make_tenant("pool"), make_tenant("pool")
    key = make_key(tenant)
    _document(tenant)
    url = reverse("console:tenant-queries", args=[tenant.slug])
    assert b"No searches and answers yet." in staff_client.get(url).content

    hits = api.post(
        "/api/v1/search", {"query": "What do zebras eat?"}, format="json", **bearer(key)
    ).json()["results"]
    assert hits
    html = staff_client.get(url).content.decode()
    assert "What do zebras eat?" in html and "<td>search</td>" in html and ">API<" in html
    assert key[:8] in html
    chunk_url = reverse("console:tenant-chunk", args=[tenant.slug, hits[0]["chunk_id"]])
    assert f'href="{chunk_url}"' in html and f'hx-get="{chunk_url}"' in html
    assert staff_client.get(chunk_url, **HX).status_code == 200
    # Filtered to answers (an htmx fragment), then another tenant's log: nothing of it.
    fragment = staff_client.get(url, {"kind": "answer"}, **HX).content.decode()
    assert "<html" not in fragment and "No answers yet." in fragment
    assert "What do zebras eat?" not in fragment
    other_html = staff_client.get(reverse("console:tenant-queries", args=[other.slug])).content
    assert (
        b"What do zebras eat?" not in other_html and b"No searches and answers yet." in other_html
    )


def test_unknown_tenants_and_documents_are_404(staff_client, stocked):
    tenant = stocked[0]
    for name in ("console:tenant-documents", "console:tenant-usage", "console:tenant-queries"):
        assert staff_client.get(reverse(name, args=["no-such-tenant"])).status_code == 404
    missing = uuid.uuid4()
    row = reverse("console:tenant-document-row", args=[tenant.slug, missing])
    assert staff_client.get(row).status_code == 404
    delete = reverse("console:tenant-document-delete", args=[tenant.slug, missing])
    assert staff_client.post(delete).status_code == 404
