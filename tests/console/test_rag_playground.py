"""The playground: pick a tenant, ask, and the answer streams from the answer service with
citations of that tenant only, recorded as a console query; refusals are clear problems."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from rag.selectors import querylog_list
from tenants.models import UsageRecord
from tests.console.test_rag_pages import _document
from tests.helpers import MODES, sse_events

ZOO = (
    "# Lakeside zoo handbook\n\n## Zebras\n\nThe zebras at Lakeside zoo eat fresh meadow hay "
    "twice a day.\n\n## Penguins\n\nThe penguins are fed herring every morning."
)
FARM = "# Farm notes\n\nOur goats graze on clover; the farm has no zebras at all."
QUESTION = "What do the zebras eat?"


def _events(response) -> list[tuple[str, dict]]:
    return sse_events(b"".join(response.streaming_content))


def _ask(client, tenant, **fields):
    body = {"question": QUESTION, "k": "5", "max_tokens": "12", "policy": "annotate", **fields}
    return client.post(reverse("console:playground-ask", args=[tenant.slug]), body)


def test_playground_page_offers_active_tenants_with_labelled_inputs(staff_client, make_tenant):
    from tenants.services.provisioning import tenant_suspend

    active, suspended = make_tenant("pool"), make_tenant("pool")
    tenant_suspend(tenant=suspended)
    response = staff_client.get(reverse("console:playground"), {"tenant": active.slug})
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<option value="{active.slug}" selected>{active.name} ({active.slug}, pool)' in html
    assert f'value="{suspended.slug}"' not in html
    for name in ("tenant", "question", "k", "max_tokens"):
        assert f'<label for="id_{name}">' in html and f'id="id_{name}"' in html
        assert f'id="id_{name}_error"' in html
    assert 'aria-live="polite"' in html and 'role="alert"' in html
    assert "js/playground.js" in html and 'name="csrfmiddlewaretoken"' in html
    ask_url = reverse("console:playground-ask", args=["__slug__"])
    assert f'data-ask-url="{ask_url}"' in html


@pytest.mark.parametrize("mode", MODES)
def test_an_answer_streams_with_citations_of_that_tenant_only(
    mode, staff_client, make_tenant, settings
):
    # The farm's notes are not about zebras: generate anyway, to check a real answer's citations.
    settings.ANSWER_DECLINE = False
    zoo, farm = make_tenant(mode), make_tenant(mode)
    _document(zoo, title="Zoo handbook", text=ZOO)
    farm_doc = str(_document(farm, title="Farm notes", text=FARM)[0].id)

    response = _ask(staff_client, farm)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = _events(response)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) > 2
    done = events[-1][1]
    assert "".join(data["text"] for _, data in events[:-1]) == done["answer"]
    assert done["citations"] and {c["document_id"] for c in done["citations"]} == {farm_doc}
    assert "meadow hay" not in json.dumps(done)
    assert 0 < done["usage"]["completion_tokens"] <= 12 and done["max_tokens"] == 12
    assert set(done["timings"]) >= {"embed_ms", "retrieve_ms", "ttft_ms", "generate_ms"}

    # Recorded like any answer: the query log (source "console", no key) and the ledger.
    [log] = querylog_list(tenant=farm)
    assert (log.kind, log.source, log.api_key_prefix, log.question) == (
        "answer",
        "console",
        "",
        QUESTION,
    )
    assert [c["chunk_id"] for c in log.citations] == [c["chunk_id"] for c in done["citations"]]
    assert querylog_list(tenant=zoo) == []
    [row] = UsageRecord.objects.filter(tenant_id=farm.pk, kind="answer")
    assert row.api_key_id is None and row.completion_tokens == done["usage"]["completion_tokens"]

    # Each citation opens its chunk in the console; under the other tenant's slug the id finds
    # nothing, in every mode (chunk ids are random, not numbered per store).
    chunk_id = done["citations"][0]["chunk_id"]
    chunk = staff_client.get(reverse("console:tenant-chunk", args=[farm.slug, chunk_id]))
    assert chunk.status_code == 200 and "goats graze on clover" in chunk.content.decode()
    crossed = staff_client.get(reverse("console:tenant-chunk", args=[zoo.slug, chunk_id]))
    assert crossed.status_code == 404
    assert b"goats" not in crossed.content


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["detail"]
    return body


def test_invalid_input_is_a_problem_naming_the_fields(staff_client, make_tenant):
    tenant = make_tenant("pool")
    body = _problem(_ask(staff_client, tenant, question="  ", k="0"), 422, "invalid_request")
    assert set(body["errors"]) == {"question", "k"}
    assert body["errors"]["k"] == ["Ensure this value is greater than or equal to 1."]
    assert querylog_list(tenant=tenant) == []


def test_suspended_and_unknown_tenants_are_refused(staff_client, make_tenant):
    from tenants.services.provisioning import tenant_suspend

    tenant = make_tenant("pool")
    tenant_suspend(tenant=tenant)
    body = _problem(_ask(staff_client, tenant), 409, "tenant_not_active")
    assert "suspended" in body["detail"]
    response = staff_client.post(reverse("console:playground-ask", args=["no-such-tenant"]))
    assert response.status_code == 404


def test_no_sources_answers_at_once_without_the_model(staff_client, make_tenant):
    tenant = make_tenant("bridge")
    events = _events(_ask(staff_client, tenant))
    assert [name for name, _ in events] == ["delta", "done"]
    from rag.services.grounding import DECLINE_ANSWER

    assert events[-1][1]["answer"] == DECLINE_ANSWER and events[-1][1]["citations"] == []


def test_a_busy_generator_is_a_503_with_retry_after(staff_client, make_tenant, settings):
    settings.ANSWER_DECLINE = False  # the chunk's stand-in embedding matches no question
    from rag.generation.gate import get_gate

    tenant = make_tenant("pool")
    _document(tenant, text="Zebras eat meadow hay twice a day.")
    gate = get_gate()
    gate.acquire()  # another request is generating...
    saved, gate.max_waiting = gate.max_waiting, 0  # ...and the queue has no room left
    try:
        response = _ask(staff_client, tenant, question="zebras meadow hay")
    finally:
        gate.max_waiting = saved
        gate.release()
    _problem(response, 503, "generator_busy")
    assert int(response["Retry-After"]) >= 1
    assert querylog_list(tenant=tenant) == []  # refused before it started: nothing used


def test_the_generation_slot_quota_is_a_429(staff_client, make_tenant, settings):
    settings.ANSWER_DECLINE = False  # the chunk's stand-in embedding matches no question
    from tenants.services.quotas import generation_slot, quota_set

    tenant = make_tenant("pool")
    _document(tenant, text="Zebras eat meadow hay twice a day.")
    quota_set(tenant=tenant, max_concurrent_generations=1)
    with generation_slot(tenant=tenant):
        response = _ask(staff_client, tenant, question="zebras meadow hay")
    _problem(response, 429, "rate_limited")
    assert response["Retry-After"] == "1"


@pytest.mark.parametrize("field", ["k", "max_tokens"])
def test_numbers_out_of_range_are_tied_to_their_field(staff_client, make_tenant, field):
    tenant = make_tenant("pool")
    body = _problem(_ask(staff_client, tenant, **{field: "-3"}), 422, "invalid_request")
    assert list(body["errors"]) == [field]
    assert re.search(r"greater than or equal to 1", body["errors"][field][0])
