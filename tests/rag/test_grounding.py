"""The support check, answer policies and declining: through the real API, worker and models.

A fabricated sentence is injected into a real answer by wrapping the real decode loop: the
model runs as usual, and one sentence the sources do not say is appended to what it generated.
"""

import pytest

from tests.helpers import MODES, bearer, sse_events

MANUAL = (
    "# Harbour pump manual\n\n## Ports\n\nThe harbour pump controller listens on port 7311. "
    "Its status page is served on the same port.\n\n## Filters\n\nThe intake filter of the "
    "harbour pump is replaced every ninety days by the night crew.\n\n## Alarms\n\nA red lamp "
    "on the harbour pump means the intake is blocked; the pump stops until it is cleared."
)
QUESTION = "Which port does the harbour pump controller listen on?"
FABRICATED = " The harbour pump controller also accepts telnet logins on port 2323 [1]."
OUT_OF_CORPUS = "Who won the 1998 football World Cup?"


@pytest.fixture
def manual_tenant(make_tenant, make_key, upload, wait_done, worker):
    def make(mode="pool"):
        tenant = make_tenant(mode)
        key = make_key(tenant)
        document_id = upload(key, text=MANUAL, title="Harbour pump manual").json()["id"]
        assert wait_done(key, document_id)["status"] == "ready"
        return tenant, key

    return make


@pytest.fixture
def inject_fabrication(monkeypatch):
    """The real decode loop, then one invented sentence; returns the calls it saw."""
    import rag.services.answer as answer_module

    real = answer_module.decode_stream
    calls = []

    def decode_then_invent(**kwargs):
        calls.append(kwargs)
        yield from real(**kwargs)
        yield FABRICATED

    monkeypatch.setattr(answer_module, "decode_stream", decode_then_invent)
    return calls


def _answer(api, key, **body):
    body = {"question": QUESTION, "max_tokens": 32, "cache": False, **body}
    return api.post("/api/v1/answer", body, format="json", **bearer(key))


def test_an_invented_sentence_is_flagged_under_annotate(api, manual_tenant, inject_fabrication):
    _, key = manual_tenant()
    body = _answer(api, key, policy="annotate").json()
    assert inject_fabrication, "the model ran"
    assert body["policy"] == "annotate" and "2323" in body["answer"]
    [invented] = [s for s in body["sentences"] if "2323" in s["text"]]
    assert invented["claim"] and not invented["supported"] and invented["kept"]
    assert invented["supported_by"] == [] and invented["cited"] == [1]
    assert body["grounded"] < 1.0
    assert body["raw_answer"] == body["answer"]


@pytest.mark.parametrize("mode", MODES)
def test_strict_removes_the_invented_sentence_streamed_or_not(
    api, manual_tenant, inject_fabrication, mode
):
    _, key = manual_tenant(mode)
    body = _answer(api, key, policy="strict").json()
    assert "2323" not in body["answer"] and "2323" in body["raw_answer"]
    [invented] = [s for s in body["sentences"] if "2323" in s["text"]]
    assert not invented["supported"] and not invented["kept"]
    assert body["grounded"] == 1.0
    assert "7311" in body["answer"], body  # what is left (or quoted) says the right port
    for sentence in body["sentences"]:
        if sentence["kept"]:
            assert sentence["supported"] or not sentence["claim"]

    # Streamed, the invented sentence never reaches the client, not even in a delta.
    streamed = _answer(api, key, policy="strict", stream=True)
    events = sse_events(b"".join(streamed.streaming_content))
    deltas = "".join(data["text"] for name, data in events if name == "delta")
    assert "2323" not in deltas
    [done] = [data for name, data in events if name == "done"]
    assert done["answer"] == deltas.strip() or done["answer"] == deltas
    assert any("2323" in s["text"] and not s["kept"] for s in done["sentences"])
    assert done["grounded"] == 1.0 and done["policy"] == "strict"


def test_the_support_check_scores_numbers_and_names_against_the_sources():
    from rag.generation.prompt import PromptSource
    from rag.services.grounding import SourceIndex

    index = SourceIndex([PromptSource(1, 1, "d", "Pump manual", MANUAL)])
    right, invented, names = index.check_all(
        [
            "The controller listens on port 7311 [1].",
            "The controller listens on port 7312 [1].",
            "Run `pump_reset --hard` to clear the intake [1].",
        ]
    )
    assert right.supported and right.supported_by == [1] and right.support >= 0.55
    assert not invented.supported and invented.support < 0.55
    assert not names.supported  # an invented command name
    [refusal] = index.check_all(["The sources do not say."])
    assert not refusal.claim and refusal.supported


def test_a_number_inside_a_name_or_a_code_fence_supports_nothing():
    """Seen on the shipped evaluation set: "3 dimensions" passed against a source that says
    384 because "Python 3.11" was split into numbers, and a strict answer of only "```sql"
    was kept as a supported claim."""
    from rag.generation.prompt import PromptSource
    from rag.services.grounding import SourceIndex

    text = (
        "Tenantry needs Python 3.11 and PgBouncer 1.18.0 for its tests. "
        "The all-MiniLM-L6-v2 embeddings have 384 dimensions."
    )
    index = SourceIndex([PromptSource(1, 1, "d", "Setup", text)], "How many dimensions?")
    wrong, right, version, fence = index.check_all(
        [
            "The all-MiniLM-L6-v2 embeddings have 3 dimensions. [1]",
            "The all-MiniLM-L6-v2 embeddings have 384 dimensions. [1]",
            "The tests run against PgBouncer 1.18 [1].",
            "```sql [1]",
        ]
    )
    assert not wrong.supported and right.supported
    assert version.supported  # the leading parts of a dotted version are still its own
    assert not fence.claim


def test_numbers_stand_beside_what_they_count_and_quotes_are_as_written():
    """Seen on the shipped evaluation set, each in one source sentence with the right words:
    "3 dimensions" against "Gemma 3", "error code 415" against the 415 of other types, a
    misspelt `bypassslr`, and a document's title quoted as a role's name."""
    from rag.generation.prompt import PromptSource
    from rag.services.grounding import SourceIndex

    text = (
        "The embedding model (all-MiniLM-L6-v2) and the generators (SmolLM2 and Gemma 3) come "
        "from PyPI packages. Bad input: an upload over the limit gets error code 413 "
        "`payload_too_large`; other types get 415 `unsupported_type`. The app role "
        "(`tenantry_app`) is not a superuser and has no `BYPASSRLS`."
    )
    index = SourceIndex([PromptSource(1, 1, "d", "Tenantry's architecture", text)])
    checks = index.check_all(
        [
            "The all-MiniLM-L6-v2 embeddings have 3 dimensions. [1]",
            "The generators are SmolLM2 and Gemma 3. [1]",
            "An upload over the limit gets error code 415. [1]",
            "An upload over the limit gets error code 413. [1]",
            "The app role `tenantry_app` has no `bypassslr` attribute. [1]",
            "The app role `tenantry_app` has no `BYPASSRLS` attribute. [1]",
            'The app role is called "Tenantry\'s architecture". [1]',
        ]
    )
    assert [c.supported for c in checks] == [False, True, False, True, False, True, False]


@pytest.mark.parametrize("mode", MODES)
def test_an_out_of_corpus_question_is_declined_without_the_model(
    api, manual_tenant, inject_fabrication, mode
):
    from rag.services.grounding import DECLINE_ANSWER
    from tenants.models import UsageRecord

    tenant, key = manual_tenant(mode)
    body = _answer(api, key, question=OUT_OF_CORPUS).json()
    assert body["answer"] == DECLINE_ANSWER
    assert body["finish_reason"] == "declined" and body["declined"] is True
    assert body["citations"] == [] and body["sentences"] == []
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert inject_fabrication == [], "the decode loop was never entered"
    streamed = _answer(api, key, question=OUT_OF_CORPUS, stream=True)
    events = sse_events(b"".join(streamed.streaming_content))
    assert [name for name, _ in events] == ["delta", "done"]
    assert events[-1][1]["finish_reason"] == "declined"
    assert inject_fabrication == []
    rows = UsageRecord.objects.filter(tenant_id=tenant.pk, kind="answer")
    assert sum(r.completion_tokens + r.prompt_tokens for r in rows) == 0
    assert sum(r.requests for r in rows) == 2


def test_extractive_quotes_the_sources_and_generates_nothing(
    api, manual_tenant, inject_fabrication
):
    _, key = manual_tenant()
    body = _answer(api, key, policy="extractive").json()
    assert inject_fabrication == []
    assert body["finish_reason"] == "stop" and body["usage"]["completion_tokens"] == 0
    assert "listens on port 7311" in body["answer"] and body["answer"].startswith('"')
    assert body["citations"] and all(s["supported"] for s in body["sentences"])
    assert {c["n"] for c in body["citations"]} == {n for s in body["sentences"] for n in s["cited"]}


def test_the_tenant_policy_applies_and_a_request_overrides_it(api, manual_tenant):
    from tenants.services.answer_settings import tenant_answer_policy_set

    tenant, key = manual_tenant()
    tenant_answer_policy_set(tenant=tenant, policy="extractive")
    body = _answer(api, key).json()
    assert body["policy"] == "extractive" and body["usage"]["completion_tokens"] == 0
    assert _answer(api, key, policy="annotate").json()["policy"] == "annotate"
    refused = _answer(api, key, policy="lenient")
    assert refused.status_code == 400, refused.content
    with pytest.raises(ValueError):
        tenant_answer_policy_set(tenant=tenant, policy="lenient")


def test_openai_chat_carries_the_check_and_declines_with_stop(api, manual_tenant):
    _, key = manual_tenant()
    chat = {"messages": [{"role": "user", "content": OUT_OF_CORPUS}], "max_tokens": 16}
    body = api.post("/v1/chat/completions", chat, format="json", **bearer(key)).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["grounding"]["declined"] is True
    from rag.services.grounding import DECLINE_ANSWER

    assert body["choices"][0]["message"]["content"] == DECLINE_ANSWER
