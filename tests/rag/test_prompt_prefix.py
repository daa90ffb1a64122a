"""The shared prompt prefix: the one piece of model state that outlives a generation.

The gate keeps the chat template's opening and SYSTEM_PROMPT evaluated between generations
(gate.py). These tests hold it to what makes that safe: it is the same for every tenant, it
holds nothing a tenant sent, nothing else is left after an answer, the next prompt reuses
exactly it, and reusing it changes no output.
"""

from dataclasses import dataclass

import pytest

from rag.generation.decode import sampling_params
from rag.generation.gate import GenerationGate, holds_only_prefix, prefix_tokens
from rag.generation.prompt import SYSTEM_PROMPT, prompt_build, shared_prefix
from tests.helpers import bearer

SECRET = "heliotrope"


@dataclass
class Hit:
    chunk_id: int
    document_id: str
    title: str
    text: str


@pytest.fixture(scope="module")
def model():
    from rag.generation.model import get_model

    return get_model()


def _cached(model) -> list[int]:
    return model.llm.input_ids[: model.llm.n_tokens].tolist()


def _greedy(model, tokens: list[int], count: int = 24) -> list[int]:
    out = []
    for token in model.llm.generate(tokens, **sampling_params(0)):
        if model.is_end_of_generation(token) or len(out) >= count:
            break
        out.append(token)
    return out


def test_the_prefix_is_the_platform_text_only_even_with_app_instructions(model):
    hits = [Hit(1, "d", f"{SECRET} notes", f"The {SECRET} code is 4417.")]
    prefix = shared_prefix(model)
    prompts = [
        prompt_build(model=model, question=f"What is the {SECRET} code?", hits=hits, max_tokens=8),
        prompt_build(
            model=model,
            question="What is the code?",
            hits=hits,
            max_tokens=8,
            instructions=f"You are the {SECRET} assistant of tenant A. Always answer in French.",
        ),
    ]
    text = model.llm.detokenize(prefix, special=True).decode()
    assert len(prefix) > 20  # SYSTEM_PROMPT's words are in it: there is something to reuse
    assert SECRET not in text and "Instructions from the application" not in text
    opening = SYSTEM_PROMPT[:40]
    assert opening in text
    # The template's opening, then SYSTEM_PROMPT or a beginning of it: nothing after it.
    assert SYSTEM_PROMPT.startswith(text[text.index(opening) :].rstrip())
    for prompt in prompts:  # every prompt, with instructions or without, begins with it
        assert prompt.tokens[: len(prefix)] == prefix
        assert len(prompt.tokens) > len(prefix)


def test_after_an_answer_the_model_holds_only_the_shared_prefix(
    api, make_tenant, make_key, upload, wait_done, worker, model
):
    key = make_key(make_tenant("pool"))
    text = f"The {SECRET} vault opens with code 4417."
    wait_done(key, upload(key, text=text).json()["id"])
    response = api.post(
        "/v1/chat/completions",
        {
            "model": model.name,
            "messages": [
                {"role": "system", "content": f"You guard the {SECRET} vault. Be terse."},
                {"role": "user", "content": f"Which code opens the {SECRET} vault?"},
            ],
            "max_tokens": 4,
            "temperature": 0,
        },
        format="json",
        **bearer(key),
    )
    assert response.status_code == 200, response.content
    assert response.json()["usage"]["prompt_tokens"] > len(prefix_tokens(model)) + 20
    assert _cached(model) == prefix_tokens(model)  # not one token of A's prompt or answer
    assert SECRET not in model.llm.detokenize(_cached(model)).decode()


def test_the_next_tenant_reuses_only_the_shared_prefix(
    api, make_tenant, make_key, upload, wait_done, worker, model, monkeypatch
):
    keys = []
    for animal in ("moles", "voles"):
        key = make_key(make_tenant("pool"))
        wait_done(key, upload(key, text=f"The {animal} dig tunnels under the meadow.").json()["id"])
        keys.append(key)

    def answer(key: str, question: str) -> dict:
        response = api.post(
            "/api/v1/answer",
            {"question": question, "max_tokens": 2, "cache": False},
            format="json",
            **bearer(key),
        )
        assert response.status_code == 200, response.content
        return response.json()

    # B's prompt shares far more than the prefix with A's (the template around the sources,
    # most of the question), and must still reuse the prefix only.
    answer(keys[0], "What do the moles dig under the meadow?")
    evaluated = []  # (position the batch starts at, its length), for B's generation
    original = model.llm.eval

    def spy(tokens):
        evaluated.append((model.llm.n_tokens, len(tokens)))
        return original(tokens)

    monkeypatch.setattr(model.llm, "eval", spy)
    second = answer(keys[1], "What do the voles dig under the meadow?")
    prefix = len(prefix_tokens(model))
    assert evaluated[0] == (prefix, second["usage"]["prompt_tokens"] - prefix)
    assert _cached(model) == prefix_tokens(model)


def test_greedy_output_is_the_same_with_and_without_the_reused_prefix(model):
    gate = GenerationGate(max_waiting=2, timeout=30)
    hits = [
        Hit(1, "d1", "Harbour", "The harbour opens at 7 o'clock and keeps 12 lanterns."),
        Hit(2, "d2", "Library", "The library opens at 9 o'clock and keeps 40 maps."),
    ]
    first = prompt_build(
        model=model, question="What does the library keep?", hits=hits[1:], max_tokens=24
    )
    second = prompt_build(
        model=model,
        question="When does the harbour open?",
        hits=hits,
        max_tokens=24,
        instructions="Answer in one sentence.",
    )
    model.llm.reset()
    fresh = _greedy(model, second.tokens)  # the whole prompt evaluated from nothing
    with gate.turn(model):
        _greedy(model, first.tokens)  # someone else's generation in between
    with gate.turn(model):
        assert _cached(model) == prefix_tokens(model)
        reused = _greedy(model, second.tokens)
    assert reused == fresh and len(fresh) > 3


def test_every_turn_starts_from_the_prefix_whatever_the_last_one_left(model):
    gate = GenerationGate(max_waiting=2, timeout=30)
    with gate.turn(model):
        model.llm.reset()  # a turn that threw everything away ...
        model.llm.eval(model.tokenize(f"The {SECRET} is hidden.", special=False))
    assert holds_only_prefix(model)  # ... is restored on release
    model.llm.eval(model.tokenize(f"Outside any turn: {SECRET}.", special=False))
    with gate.turn(model):
        assert holds_only_prefix(model)  # and tampering outside a turn is undone on acquire
