"""`manage.py ask`: the answer service from a terminal, streamed, with citations and usage."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def test_ask_streams_an_answer_with_sources_usage_and_timings(
    make_tenant, make_key, upload, wait_done, worker
):
    tenant = make_tenant("bridge")
    key = make_key(tenant)
    text = "# Orchard\n\nThe old orchard grows Bramley apples and two rows of quince trees."
    document_id = upload(key, text=text, title="Orchard notes").json()["id"]
    assert wait_done(key, document_id)["status"] == "ready"
    out = io.StringIO()
    call_command(
        "ask", tenant.slug, "Which apples grow in the orchard?", "--max-tokens", "12", stdout=out
    )
    output = out.getvalue()
    answer, _, rest = output.partition("\nSources:\n")
    assert answer.strip()
    assert "[1] Orchard notes: The old orchard grows Bramley apples" in rest
    assert "usage: " in rest and " completion = " in rest
    assert "timings (ms): embed_ms" in rest and "ttft_ms" in rest
    assert "grounded: " in rest and "(policy strict)" in rest  # the tenant's, by default
    # The command's answer is metered like the API's (with no key: an operator asked).
    from tenants.models import UsageRecord

    [row] = UsageRecord.objects.filter(tenant_id=tenant.pk, kind="answer")
    assert row.api_key_id is None and row.requests == 1
    assert 0 < row.completion_tokens <= 12 and row.prompt_tokens > 0


def test_ask_declines_what_the_documents_do_not_say(make_tenant, make_key, upload, wait_done):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    text = "# Orchard\n\nThe old orchard grows Bramley apples and two rows of quince trees."
    assert wait_done(key, upload(key, text=text).json()["id"])["status"] == "ready"
    out = io.StringIO()
    call_command("ask", tenant.slug, "Who won the 1998 football World Cup?", stdout=out)
    output = out.getvalue()
    assert output.startswith("The documents do not contain an answer to this question.")
    assert "declined: the documents do not answer this question" in output
    assert "Sources:" not in output and "= 0 tokens" in output


def test_ask_refuses_bad_arguments(make_tenant):
    tenant = make_tenant("pool")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("ask", "no-such-tenant", "why?")
    with pytest.raises(CommandError, match="--k"):
        call_command("ask", tenant.slug, "why?", "--k", "0")
    with pytest.raises(CommandError, match="empty"):
        call_command("ask", tenant.slug, "   ")
