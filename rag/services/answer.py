"""Answers: retrieve the tenant's best chunks, ground a prompt in them, generate.

One code path for the answer API, its streaming form, the OpenAI-compatible chat endpoint, the
`ask` command and the console. Retrieval runs in the tenant context and decides, in code, what
the model may read; the model only ever sees that tenant's chunks.

An AnswerSession is prepared (retrieval and prompt; errors here are the client's), started
(the tenant's concurrent-generation slot and this process's generation gate; refusals here are
429/503) and then iterated for text deltas. `close()` releases both and records usage; it runs
whether the stream finished, failed or the client went away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

from django.conf import settings

from tenants.models import ApiKey, Tenant
from tenants.services.quotas import generation_slot, quota_max_tokens
from tenants.services.usage import usage_record

from ..generation.decode import DecodeStats, decode_stream
from ..generation.gate import get_gate
from ..generation.model import LoadedModel, get_model
from ..generation.prompt import Prompt, Turn, prompt_build
from ..tokenizer import count_tokens
from .querylog import querylog_record
from .search import chunk_search

logger = logging.getLogger(__name__)

NO_SOURCES_ANSWER = "I could not find anything about that in your documents."
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class Citation:
    n: int
    chunk_id: int
    document_id: str
    title: str
    snippet: str


class AnswerSession:
    """One answer in progress. Not shared between threads."""

    def __init__(
        self,
        *,
        tenant: Tenant,
        api_key: ApiKey | None,
        model: LoadedModel,
        prompt: Prompt,
        temperature: float,
        search_timings: dict,
        question_tokens: int,
        started: float,
        question: str = "",
        k: int = 0,
        source: str = "api",
    ):
        self.tenant = tenant
        self.api_key = api_key
        self.model = model
        self.prompt = prompt
        self.temperature = temperature
        self.search_timings = search_timings
        self.question_tokens = question_tokens
        self.started = started
        self.question, self.k = question, k
        self.source = source  # for the query log: "api", "openai", "cli" or "console"
        self.stats = DecodeStats(prompt_tokens=0)
        self.answer = ""
        self._resources = ExitStack()
        self._gate_at: float | None = None
        self._closed = False
        self._started = False

    @property
    def citations(self) -> list[Citation]:
        return [
            Citation(s.n, s.chunk_id, s.document_id, s.title, s.text[:SNIPPET_CHARS])
            for s in self.prompt.sources
        ]

    @property
    def model_name(self) -> str:
        return self.model.name

    def start(self) -> AnswerSession:
        """Take the tenant's generation slot and this process's gate, or raise (QuotaExceeded,
        GeneratorBusy) with nothing held. Without sources the model is not needed."""
        if not self.prompt.sources:
            self._started = True
            return self
        try:
            self._resources.enter_context(generation_slot(tenant=self.tenant))
            gate = get_gate()
            gate.acquire(tenant_id=self.tenant.id)
            self._resources.callback(gate.release)
        except BaseException:
            self._resources.close()
            raise
        self._gate_at = time.perf_counter()
        self._started = True
        return self

    def deltas(self) -> Iterator[str]:
        """Text deltas of the answer; the whole answer accumulates in `self.answer`."""
        try:
            if not self.prompt.sources:
                self.answer = NO_SOURCES_ANSWER
                self.stats.finish_reason = "stop"
                self.stats.first_token_at = self.stats.finished_at = time.perf_counter()
                yield NO_SOURCES_ANSWER
                return
            if self._gate_at is None:
                raise RuntimeError("start() the session before reading it")
            for delta in decode_stream(
                model=self.model,
                tokens=self.prompt.tokens,
                max_tokens=self.prompt.max_tokens,
                temperature=self.temperature,
                stats=self.stats,
            ):
                self.answer += delta
                yield delta
        finally:
            self.close()

    def run(self) -> AnswerSession:
        """Generate the whole answer (the non-streaming form)."""
        for _ in self.deltas():
            pass
        return self

    def close(self) -> None:
        """Release the gate and slot and record usage. Harmless to call again."""
        if self._closed:
            return
        self._closed = True
        self._resources.close()
        if not self._started:  # refused before generating: nothing was used
            return
        finished = self.stats.finished_at is not None  # not: failed, or the client went away
        if not finished:
            self.stats.finished_at = time.perf_counter()
        try:
            usage_record(
                tenant=self.tenant,
                api_key=self.api_key,
                kind="answer",
                prompt_tokens=self.stats.prompt_tokens,
                completion_tokens=self.stats.completion_tokens,
                embedding_tokens=self.question_tokens,
                generation_ms=round(self.timings()["generate_ms"]),
            )
        except Exception:  # metering must never lose the user's answer
            logger.exception("could not record answer usage for %s", self.tenant.slug)
        querylog_record(  # never raises
            tenant=self.tenant,
            kind="answer",
            question=self.question,
            mode="hybrid",
            k=self.k,
            timings=self.timings(),
            prompt_tokens=self.stats.prompt_tokens,
            completion_tokens=self.stats.completion_tokens,
            citations=self.citations,
            api_key=self.api_key,
            source=self.source,
            status="ok" if finished else "error",
        )

    def usage(self) -> dict:
        prompt, completion = self.stats.prompt_tokens, self.stats.completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def timings(self) -> dict:
        end = self.stats.finished_at or time.perf_counter()
        first = self.stats.first_token_at or end
        gate = self._gate_at or first

        def ms(a: float, b: float) -> float:
            return round(max(0.0, b - a) * 1000, 2)

        return {
            "embed_ms": self.search_timings.get("embed_ms", 0.0),
            "retrieve_ms": self.search_timings.get("search_ms", 0.0),
            "queue_ms": ms(self.started + self.search_timings.get("total_ms", 0) / 1000, gate),
            "ttft_ms": ms(self.started, first),
            "generate_ms": ms(gate, end) if self._gate_at else 0.0,
            "total_ms": ms(self.started, end),
        }

    def result(self) -> dict:
        """The answer API's response body (and the final event of its stream)."""
        return {
            "answer": self.answer,
            "citations": [c.__dict__ for c in self.citations],
            "usage": self.usage(),
            "timings": self.timings(),
            "model": self.model_name,
            "finish_reason": self.stats.finish_reason,
            "max_tokens": self.prompt.max_tokens,
        }


def answer_prepare(
    *,
    tenant: Tenant,
    question: str,
    k: int = 5,
    filters: dict | None = None,
    document_ids: list | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    history: list[Turn] | None = None,
    instructions: str = "",
    api_key: ApiKey | None = None,
    source: str = "api",
) -> AnswerSession:
    """Retrieve (hybrid, in the tenant context) and build the prompt. Raises FilterError.

    `max_tokens` above the tenant's cap is clamped to the cap (the response says the value
    used); the default is ANSWER_DEFAULT_MAX_TOKENS, also under the cap.
    """
    started = time.perf_counter()
    cap = quota_max_tokens(tenant=tenant)
    wanted = max_tokens if max_tokens is not None else settings.ANSWER_DEFAULT_MAX_TOKENS
    found = chunk_search(
        tenant=tenant,
        query=question,
        k=k,
        mode="hybrid",
        filters=filters,
        document_ids=document_ids,
    )
    model = get_model()
    prompt = prompt_build(
        model=model,
        question=question,
        hits=found.hits,
        max_tokens=max(1, min(wanted, cap)),
        history=history,
        instructions=instructions,
    )
    return AnswerSession(
        tenant=tenant,
        api_key=api_key,
        model=model,
        prompt=prompt,
        temperature=(
            settings.ANSWER_DEFAULT_TEMPERATURE if temperature is None else float(temperature)
        ),
        search_timings=found.timings,
        question_tokens=count_tokens(question),
        started=started,
        question=question,
        k=k,
        source=source,
    )
