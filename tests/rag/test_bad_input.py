"""Bad uploads get a clear status and reason and store nothing; hostile PDFs fail only their
document, and the worker goes on with the next one."""

import io
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.helpers import bearer

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def _count(api, key) -> int:
    return api.get("/api/v1/documents", **bearer(key)).json()["count"]


def _problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    return response.json()


def test_oversized_upload_is_413_before_reading_the_body(make_tenant, make_key, api, settings):
    settings.RAG_MAX_UPLOAD_BYTES = 1000
    key = make_key(make_tenant("pool"))
    big = SimpleUploadedFile("big.txt", b"words " * 1000, content_type="text/plain")
    _problem(
        api.post("/api/v1/documents", {"file": big}, format="multipart", **bearer(key)),
        413,
        "payload_too_large",
    )
    _problem(
        api.post("/api/v1/documents", {"text": "x" * 5000}, format="json", **bearer(key)),
        413,
        "payload_too_large",
    )
    # A lying Content-Length is enough to refuse: the body is never read.
    response = api.generic(
        "POST",
        "/api/v1/documents",
        b"",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
        CONTENT_LENGTH="999999999",
    )
    _problem(response, 413, "payload_too_large")
    assert _count(api, key) == 0


@pytest.mark.parametrize("name", ["picture.png", "notes.txt", "report.pdf"])
def test_unsupported_type_is_415_whatever_the_name(make_tenant, make_key, api, name):
    key = make_key(make_tenant("pool"))
    upload = SimpleUploadedFile(name, PNG, content_type="text/plain")
    body = _problem(
        api.post("/api/v1/documents", {"file": upload}, format="multipart", **bearer(key)),
        415,
        "unsupported_type",
    )
    assert "image/png" in body["detail"]
    assert _count(api, key) == 0


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "empty_document"), ("   \n\t  ", "empty_document"), ("\x00\x00\x00", "empty_document")],
)
def test_empty_or_textless_is_422_with_reason(make_tenant, make_key, api, text, code):
    key = make_key(make_tenant("pool"))
    upload = SimpleUploadedFile("empty.txt", text.encode(), content_type="text/plain")
    body = _problem(
        api.post("/api/v1/documents", {"file": upload}, format="multipart", **bearer(key)),
        422,
        code,
    )
    assert body["detail"]
    assert _count(api, key) == 0


def test_missing_both_file_and_text_is_400(make_tenant, make_key, api):
    key = make_key(make_tenant("pool"))
    _problem(
        api.post("/api/v1/documents", {"title": "x"}, format="json", **bearer(key)),
        400,
        "invalid_request",
    )
    _problem(
        api.post(
            "/api/v1/documents", {"text": "x", "metadata": "[1]"}, format="json", **bearer(key)
        ),
        400,
        "invalid_request",
    )


def _pdf(content: bytes, *, compressed: bool) -> bytes:
    """A one-page PDF whose page content stream is `content` (optionally FlateDecoded)."""
    stream_dict = (
        f"<< /Length {len(content)}{' /Filter /FlateDecode' if compressed else ''} >>".encode()
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        stream_dict + b"\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def _bomb() -> bytes:
    compressor = zlib.compressobj(9)
    zeros = b"0 0 m " * 100_000
    parts = [compressor.compress(zeros) for _ in range(3000)]  # ~1.8 GB inflated
    return b"".join(parts) + compressor.flush()


def _upload_pdf(api, key, data: bytes, name="doc.pdf"):
    upload = SimpleUploadedFile(name, data, content_type="application/pdf")
    response = api.post("/api/v1/documents", {"file": upload}, format="multipart", **bearer(key))
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_good_pdf_is_ingested(make_tenant, make_key, api, wait_done, search, worker):
    key = make_key(make_tenant("pool"))
    doc = _upload_pdf(
        api,
        key,
        _pdf(b"BT /F1 12 Tf 72 720 Td (Glaciers carve fjords slowly.) Tj ET", compressed=False),
    )
    done = wait_done(key, doc)
    assert done["status"] == "ready" and done["mime_type"] == "application/pdf"
    assert "Glaciers carve fjords" in search(key, "fjords glaciers")["results"][0]["text"]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: b"%PDF-1.7\n" + b"\xde\xad\xbe\xef" * 200, "pdf_malformed"),
        (lambda: _pdf(b"", compressed=False), "no_text"),
        (lambda: _pdf(_bomb(), compressed=True), None),  # pdf_memory or pdf_timeout
    ],
    ids=["garbage", "no-text-layer", "decompression-bomb"],
)
def test_hostile_or_textless_pdf_fails_its_document_and_the_worker_survives(
    make_tenant, make_key, api, wait_done, worker, make, code
):
    key = make_key(make_tenant("pool"))
    doc = wait_done(key, _upload_pdf(api, key, make()), timeout=240)
    assert doc["status"] == "failed"
    reason = doc["error"].split(":")[0]
    assert reason == code if code else reason in {"pdf_memory", "pdf_timeout"}, doc["error"]
    assert worker.proc.poll() is None  # the worker process is still alive...
    after = api.post(
        "/api/v1/documents",
        {"text": "Still working after the bad PDF."},
        format="json",
        **bearer(key),
    )
    assert wait_done(key, after.json()["id"])["status"] == "ready"  # ...and still ingests
