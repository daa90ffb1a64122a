"""One rule for a suspended tenant, whichever interface asks: its data stays, it gets no
upload, search or answer (tenants.services.provisioning.tenant_require_active)."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from rag.selectors import document_list
from tenants.services.provisioning import tenant_resume, tenant_suspend
from tests.console.conftest import staff_client  # noqa: F401 - fixture
from tests.helpers import bearer


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_suspended_tenant_gets_no_service_from_any_interface(
    make_tenant,
    make_key,
    staff_client,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    tenant = make_tenant("bridge")
    key = make_key(tenant)
    tenant = tenant_suspend(tenant=tenant)
    (tmp_path / "notes.md").write_text("Otters hold hands while they sleep.")

    # The API refuses every call.
    api = staff_client.post(
        "/api/v1/search", {"query": "otters"}, content_type="application/json", **bearer(key)
    )
    assert api.status_code == 403 and b"tenant_suspended" in api.content
    # The commands: the upload is reported failed, search and ask refuse.
    out = _run("ingest", tenant.slug, str(tmp_path / "notes.md"), "--inline")
    assert "0 ingested" in out and "tenant_suspended" in out
    with pytest.raises(CommandError, match="suspended"):
        _run("search", tenant.slug, "otters")
    with pytest.raises(CommandError, match="suspended"):
        _run("ask", tenant.slug, "What do otters do?")
    # The console: the upload is refused with the reason, the playground answers 409.
    upload = staff_client.post(
        reverse("console:tenant-document-upload", args=[tenant.slug]),
        {"files": [SimpleUploadedFile("notes.md", b"Otters hold hands.")]},
        follow=True,
    )
    assert "tenant_suspended" in upload.content.decode()
    ask = staff_client.post(
        reverse("console:playground-ask", args=[tenant.slug]),
        {"question": "otters?", "k": 3, "max_tokens": 4},
    )
    assert ask.status_code == 409
    assert document_list(tenant=tenant).total == 0  # nothing was stored by any of them

    # Resumed, the same command works again: the refusal was the rule, not a broken store.
    tenant = tenant_resume(tenant=tenant)
    assert "1 ingested" in _run("ingest", tenant.slug, str(tmp_path / "notes.md"), "--inline")
