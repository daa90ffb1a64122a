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

from observability.genai import observe_answer, stage
from tenants.models import ApiKey, Tenant
from tenants.services.provisioning import tenant_require_active
from tenants.services.quotas import generation_slot, quota_max_tokens
from tenants.services.token_budgets import token_budget_reserve
from tenants.services.usage import usage_record

from ..generation.decode import DecodeStats, decode_stream
from ..generation.gate import get_gate
from ..generation.model import LoadedModel, get_model
from ..generation.prompt import Prompt, PromptSource, Turn, prompt_build
from ..generation.registry import model_choose
from ..tokenizer import count_tokens
from .answer_policy import CheckedAnswer, decline_wanted, grounding_sources, hit_sources
from .cache import answer_cache_lookup, answer_cache_put, normalise_question
from .grounding import DECLINE_ANSWER, POLICIES, SentenceCheck, relevance_decide
from .querylog import querylog_record
from .search import chunk_search

logger = logging.getLogger(__name__)

NO_SOURCES_ANSWER = DECLINE_ANSWER  # one wording for "the documents do not say"
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
        model: LoadedModel | None,
        prompt: Prompt,
        temperature: float,
        search_timings: dict,
        question_tokens: int,
        started: float,
        question: str = "",
        k: int = 0,
        source: str = "api",
        cached: dict | None = None,
        cache_key: str | None = None,
        corpus_version: int = 0,
        checked: CheckedAnswer | None = None,
        model_label: str = "",
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
        # A cache hit replays `cached`; a fresh deterministic answer is stored under cache_key.
        self.cached, self.cache_key, self.corpus_version = cached, cache_key, corpus_version
        self.stats = DecodeStats(prompt_tokens=0)
        self.answer = ""
        # The policy and the support check (rag/services/answer_policy.py).
        self.checked = checked or CheckedAnswer(policy="annotate", question=question, sources=[])
        self.model_label = model_label  # the chosen model's name, also when none is loaded
        self._resources = ExitStack()
        self._gate_at: float | None = None
        self._closed = False
        self._started = False

    @property
    def citations(self) -> list[Citation]:
        """The sources the answer cites (strict, extractive), none when it declined, or every
        source the model read (annotate)."""
        cited = None if self.cached else self.checked.cited()
        # What was checked is the prompt's sources and the other hits numbered after them.
        pool = self.prompt.sources if cited is None else self.checked.index.sources
        return [
            Citation(s.n, s.chunk_id, s.document_id, s.title, s.text[:SNIPPET_CHARS])
            for s in pool
            if cited is None or s.n in cited
        ]

    @property
    def needs_model(self) -> bool:
        """False for a cached, declined or extractive answer: those run no model."""
        extractive = self.checked.policy == "extractive"
        return not (self.cached or self.checked.declined or extractive or not self.prompt.sources)

    @property
    def model_name(self) -> str:
        if self.cached:
            return self.cached["model"]
        return self.model.name if self.model is not None else self.model_label

    def start(self) -> AnswerSession:
        """Reserve the answer's tokens (its prompt plus max_tokens) in the tenant's and the
        key's token budgets, then take the tenant's generation slot and this process's gate, or
        raise (QuotaExceeded, GeneratorBusy) with nothing held and nothing reserved. Without
        sources, or from the cache, the model is not needed (and no tokens are reserved)."""
        if not self.needs_model:
            self._started = True
            return self
        try:
            # Before the slot and the gate: a tenant out of budget never waits for either.
            reservation = token_budget_reserve(
                tenant=self.tenant,
                api_key=self.api_key,
                model=self.model_name,
                tokens=len(self.prompt.tokens) + self.prompt.max_tokens,
            )

            def refund_unused() -> None:
                # Runs last on close (or on a refusal below, with nothing used).
                used = self.stats.prompt_tokens + self.stats.completion_tokens
                try:
                    reservation.refund(used)
                except Exception:  # the rest stays reserved until its window turns
                    logger.exception("could not refund answer tokens for %s", self.tenant.slug)

            self._resources.callback(refund_unused)
            self._resources.enter_context(generation_slot(tenant=self.tenant))
            gate = get_gate()
            # The chosen model, reset for this generation; turns go round-robin by tenant.
            gate.acquire(self.model, party=self.tenant.pk)
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
            if self.cached:
                yield from self._replay()
                return
            if not self.needs_model:
                self.answer = self.checked.without_model()
                self.stats.finish_reason = "declined" if self.checked.declined else "stop"
                self.stats.first_token_at = self.stats.finished_at = time.perf_counter()
                yield self.answer
                return
            if self._gate_at is None:
                raise RuntimeError("start() the session before reading it")
            with stage(
                "generate",
                **{
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": self.model.name,
                    "gen_ai.request.max_tokens": self.prompt.max_tokens,
                    "gen_ai.request.temperature": self.temperature,
                    "tenantry.tenant": self.tenant.slug,
                },
            ):
                generated = decode_stream(
                    model=self.model,
                    tokens=self.prompt.tokens,
                    max_tokens=self.prompt.max_tokens,
                    temperature=self.temperature,
                    stats=self.stats,
                )
                for delta in self.checked.stream(generated):
                    self.answer = self.checked.answer
                    yield delta
                self.answer = self.checked.answer
                if self.checked.declined:
                    self.stats.finish_reason = "declined"
                self.stats.finished_at = time.perf_counter()  # the check is part of the answer
        finally:
            self.close()

    def _replay(self) -> Iterator[str]:
        """A cached answer: the same text, citations and usage, at once."""
        self.answer = self.cached["answer"]
        self.stats.finish_reason = self.cached["finish_reason"]
        self.stats.prompt_tokens = self.cached["usage"]["prompt_tokens"]
        self.stats.completion_tokens = self.cached["usage"]["completion_tokens"]
        self.stats.first_token_at = self.stats.finished_at = time.perf_counter()
        self.checked.policy = self.cached.get("policy", self.checked.policy)
        self.checked.declined = self.cached.get("declined", False)
        self.checked.checks = [SentenceCheck(**c) for c in self.cached.get("sentences", [])]
        self.checked.raw_answer = self.cached.get("raw_answer")
        yield self.answer

    def run(self) -> AnswerSession:
        """Generate the whole answer (the non-streaming form)."""
        for _ in self.deltas():
            pass
        return self

    def close(self) -> None:
        """Release the gate and slot, refund the unused reserved tokens (the resources' last
        callback, with the final token counts) and record usage. Harmless to call again."""
        if self._closed:
            return
        self._closed = True
        self._resources.close()
        if not self._started:  # refused before generating: nothing was used
            return
        finished = self.stats.finished_at is not None  # not: failed, or the client went away
        if not finished:
            self.stats.finished_at = time.perf_counter()
        hit = self.cached is not None
        timings = self.timings()
        try:
            # A cache hit used no model: it counts as a request, not as tokens.
            usage_record(
                tenant=self.tenant,
                api_key=self.api_key,
                kind="answer",
                model=self.model_name,
                prompt_tokens=0 if hit else self.stats.prompt_tokens,
                completion_tokens=0 if hit else self.stats.completion_tokens,
                embedding_tokens=0 if hit else self.question_tokens,
                generation_ms=round(timings["generate_ms"]),
            )
        except Exception:  # metering must never lose the user's answer
            logger.exception("could not record answer usage for %s", self.tenant.slug)
        querylog_record(  # never raises
            tenant=self.tenant,
            kind="answer",
            question=self.question,
            mode="hybrid",
            k=self.k,
            timings=timings,
            prompt_tokens=self.stats.prompt_tokens,
            completion_tokens=self.stats.completion_tokens,
            citations=self.citations,
            api_key=self.api_key,
            source=self.source,
            status="ok" if finished else "error",
            cache_hit=hit,
        )
        observe_answer(
            tenant=self.tenant,
            model=self.model_name,
            source=self.source,
            prompt_tokens=0 if hit else self.stats.prompt_tokens,
            completion_tokens=0 if hit else self.stats.completion_tokens,
            timings=timings,
            status="ok" if finished else "error",
            cache_hit=hit,
        )
        if finished and not hit and self.cache_key and self.prompt.sources:
            answer_cache_put(
                tenant=self.tenant,
                key=self.cache_key,
                version=self.corpus_version,
                response={k: v for k, v in self.result().items() if k not in ("timings", "cached")},
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
            "check_ms": round(self.checked.check_ms, 2),
            "total_ms": ms(self.started, end),
        }

    def tenant_timings(self) -> dict:
        """The timings the tenant is shown (see visible_timings)."""
        return visible_timings(self.timings())

    def result(self) -> dict:
        """The answer API's response body (and the final event of its stream)."""
        return {
            "answer": self.answer,
            "citations": [c.__dict__ for c in self.citations],
            "usage": self.usage(),
            "timings": self.tenant_timings(),
            "model": self.model_name,
            "finish_reason": self.stats.finish_reason,
            "max_tokens": self.prompt.max_tokens,
            "cached": self.cached is not None,
            **self.checked.grounding(),
        }


# What a tenant is told of its wait for the shared generator: a bucket, not a figure. The wait
# is other tenants' generations, so an exact queue_ms would time their activity. (Its whole
# latency still includes the wait: one model shared by every tenant of a process cannot hide
# that, only bound it, through generation slots and the queue limit.) Operators get the exact
# figure in metrics and the query log.
QUEUE_BUCKETS_MS = (0, 100, 1000, 10000)


def visible_timings(timings: dict) -> dict:
    """The timings a tenant may see: queue_ms as the lower bound of its bucket."""
    waited = timings["queue_ms"]
    bucket = max(bound for bound in QUEUE_BUCKETS_MS if bound <= waited)
    return {**timings, "queue_ms": float(bucket)}


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
    use_cache: bool = True,
    model: str | None = None,
    policy: str | None = None,
) -> AnswerSession:
    """Retrieve (hybrid, in the tenant context) and build the prompt. Raises FilterError, and
    TenantNotActive for a suspended tenant.

    `model` names a registered model (UnknownModel if it is not; ModelUnavailable if loading
    it would pass the memory budget); None: the tenant's default, else the platform's.

    `max_tokens` above the tenant's cap is clamped to the cap (the response says the value
    used); the default is ANSWER_DEFAULT_MAX_TOKENS, also under the cap.

    A deterministic request (temperature 0) is looked up in the tenant's answer cache first,
    keyed on everything that decides the answer and on the tenant's corpus version; a hit
    skips retrieval and the model, and its response says `"cached": true`. `use_cache=False`
    always generates (and does not store).

    `policy` (annotate, strict, extractive) overrides the tenant's `answer_policy`. When the
    retrieved sources are not about the question (grounding.relevance_decide), the session
    declines: no model is loaded or run, and nothing is cited.
    """
    tenant_require_active(tenant=tenant)
    policy = policy or tenant.answer_policy
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    chosen = model_choose(requested=model, tenant_default=tenant.default_model)
    started = time.perf_counter()
    cap = quota_max_tokens(tenant=tenant)
    wanted = max(1, min(cap, max_tokens or settings.ANSWER_DEFAULT_MAX_TOKENS))
    temperature = settings.ANSWER_DEFAULT_TEMPERATURE if temperature is None else float(temperature)
    common = {
        "tenant": tenant,
        "api_key": api_key,
        "temperature": temperature,
        "question_tokens": count_tokens(question),
        "started": started,
        "question": question,
        "k": k,
        "source": source,
        "model_label": chosen,
    }
    cache_key, version = None, 0
    if use_cache and temperature == 0:  # deterministic: the same inputs, the same answer
        cache_key, version, cached = answer_cache_lookup(
            tenant=tenant,
            question=normalise_question(question),
            k=k,
            filters=filters or {},
            document_ids=sorted(str(d) for d in document_ids or []),
            max_tokens=wanted,
            model=chosen,
            policy=policy,
            decline=settings.ANSWER_DECLINE,
            # Everything else that decides the text: the sources' sizing and the check.
            source_tokens=settings.ANSWER_SOURCE_TOKENS,
            max_sources=settings.ANSWER_MAX_SOURCES,
            min_score_ratio=settings.ANSWER_SOURCE_MIN_SCORE_RATIO,
            grounding=(
                settings.GROUNDING_LEXICAL_WEIGHT,
                settings.GROUNDING_SUPPORT_THRESHOLD,
                settings.ANSWER_MIN_SIMILARITY,
                settings.ANSWER_MIN_COVERAGE,
                settings.EXTRACTIVE_MIN_SCORE,
            ),
            history=[(t.role, t.content) for t in history or []],
            instructions=instructions.strip(),
            context_tokens=settings.ANSWER_CONTEXT_TOKENS,
            n_ctx=settings.LLM_CONTEXT_SIZE,
            repeat_penalty=settings.LLM_REPEAT_PENALTY,
        )
        if cached is not None:
            sources = [
                PromptSource(c["n"], c["chunk_id"], c["document_id"], c["title"], c["snippet"])
                for c in cached["citations"]
            ]
            prompt = Prompt(tokens=[], sources=sources, max_tokens=cached["max_tokens"])
            return AnswerSession(
                model=None, prompt=prompt, search_timings={}, cached=cached, **common
            )
    found = chunk_search(
        tenant=tenant,
        query=question,
        k=k,
        mode="hybrid",
        filters=filters,
        document_ids=document_ids,
        observe=False,
    )
    relevance = relevance_decide(
        question=question, hits=found.hits, similarities=found.similarities
    )
    declined = decline_wanted(relevance.relevant) or not found.hits
    loaded = None
    if declined:
        prompt = Prompt(tokens=[], sources=[], max_tokens=wanted)
        sources = []
    elif policy == "extractive":
        prompt = Prompt(tokens=[], sources=hit_sources(found.hits, k), max_tokens=wanted)
        sources = prompt.sources
    else:
        loaded = get_model(chosen)
        with stage(
            "prompt", **{"tenantry.tenant": tenant.slug, "tenantry.sources": len(found.hits)}
        ):
            prompt = prompt_build(
                model=loaded,
                question=question,
                hits=found.hits,
                max_tokens=wanted,
                history=history,
                instructions=instructions,
            )
        sources = grounding_sources(prompt.sources, found.hits)
    checked = CheckedAnswer(policy=policy, question=question, sources=sources, declined=declined)
    return AnswerSession(
        model=loaded,
        checked=checked,
        prompt=prompt,
        search_timings=found.timings,
        cache_key=cache_key,
        corpus_version=version,
        **common,
    )
