"""`/v1/chat/completions` bounds its messages as the answer API bounds its question.

Found: the last user message (the question that drives retrieval and is embedded and
tokenized) had no length limit on this endpoint while `/api/v1/answer` caps `question`; and a
conversation of 199 turns of 5,000 characters (a 1 MB body, under the JSON limit) held the
prompt builder for 48 s of CPU, re-tokenizing the whole conversation once per dropped turn,
then left the answer one token.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from django.test import Client

from tests.helpers import bearer


def chat(key: str, messages: list[dict]):
    return Client().post(
        "/v1/chat/completions",
        json.dumps({"messages": messages, "max_tokens": 4}),
        content_type="application/json",
        **bearer(key),
    )


def too_long(response, param: str, status: int = 400) -> dict:
    """OpenAI's own error for an over-long string, in its shape: 400 for a message longer than
    any may be, 422 for the limits a schema cannot state (they depend on the message's place)."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "string_above_max_length",
        param,
    )
    return error


@pytest.fixture
def key(make_tenant, make_key):
    return make_key(make_tenant("pool"))


def test_the_question_is_capped_like_the_answer_apis(api, key):
    from rag.api.openai.serializers import MAX_QUESTION_CHARS

    question = "why " * (MAX_QUESTION_CHARS // 4) + "?"
    answer = api.post("/api/v1/answer", {"question": question}, format="json", **bearer(key))
    assert answer.status_code == 400 and "question" in answer.json()["errors"], answer.content
    error = too_long(chat(key, [{"role": "user", "content": question}]), "messages[0].content", 422)
    assert str(MAX_QUESTION_CHARS) in error["message"]
    # Text parts count together, as they are joined into one question.
    parts = [{"type": "text", "text": "why " * (MAX_QUESTION_CHARS // 8)}] * 2 + [
        {"type": "text", "text": "?"}
    ]
    history = [{"role": "assistant", "content": "Hello."}]
    too_long(chat(key, [*history, {"role": "user", "content": parts}]), "messages[1].content", 422)


def test_other_messages_and_the_instructions_are_bounded(key):
    from rag.api.openai.serializers import MAX_MESSAGE_CHARS

    ask = {"role": "user", "content": "What do the zebras eat?"}
    huge = "hay " * (MAX_MESSAGE_CHARS // 4) + "!"
    too_long(chat(key, [{"role": "user", "content": huge}, ask]), "messages[0].content")
    too_long(chat(key, [{"role": "assistant", "content": huge}, ask]), "messages[0].content")
    too_long(chat(key, [{"role": "user", "content": huge}]), "messages[0].content")
    # System and developer messages are one instruction block: bounded together.
    half = "be kind " * (MAX_MESSAGE_CHARS // 16 + 1)
    instructions = [{"role": "system", "content": half}, {"role": "developer", "content": half}]
    too_long(chat(key, [*instructions, ask]), "messages", 422)


def test_messages_at_the_limits_are_accepted():
    from rag.api.openai.serializers import (
        MAX_MESSAGE_CHARS,
        MAX_QUESTION_CHARS,
        ChatCompletionRequestSerializer,
    )

    messages = [
        {"role": "system", "content": "s" * MAX_MESSAGE_CHARS},
        {"role": "assistant", "content": "a" * MAX_MESSAGE_CHARS},
        {"role": "user", "content": "q" * MAX_QUESTION_CHARS},
    ]
    params = ChatCompletionRequestSerializer(data={"messages": messages})
    assert params.is_valid(), params.errors


class CountingLlama:
    """The real llama.cpp model, counting the bytes it is asked to tokenize."""

    def __init__(self, llm):
        self._llm, self.tokenized = llm, 0

    def tokenize(self, text: bytes, *args, **kwargs):
        self.tokenized += len(text)
        return self._llm.tokenize(text, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._llm, name)


def test_a_long_conversation_is_cut_in_linear_time_and_keeps_its_answer_budget():
    from rag.generation.model import get_model
    from rag.generation.prompt import Turn, prompt_build

    model = get_model()
    counting = CountingLlama(model.llm)
    spied = dataclasses.replace(model, llm=counting)
    turns = [
        Turn("user" if i % 2 else "assistant", f"turn {i} " + "word " * 120) for i in range(199)
    ]
    prompt = prompt_build(
        model=spied, question="What is hay?", hits=[], max_tokens=64, history=turns
    )
    assert prompt.max_tokens == 64  # was 1: the budget was taken before the history was cut
    assert 0 < prompt.history_dropped < len(turns)
    assert "turn 198 " in prompt.text and "turn 0 " not in prompt.text
    # The conversation is 120 KB; the old loop tokenized it once per dropped turn.
    assert counting.tokenized < 30_000, counting.tokenized
    # The newest turns that fit half the window, and not one fewer.
    kept_one_more = prompt_build(
        model=model,
        question="What is hay?",
        hits=[],
        max_tokens=64,
        history=turns[prompt.history_dropped - 1 :],
    )
    assert kept_one_more.history_dropped == 1
