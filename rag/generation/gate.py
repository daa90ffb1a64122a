"""One generation at a time per process, with a bounded queue in front of it.

llama.cpp contexts are not thread-safe, and a CPU running two decodes at once finishes both
later than one after the other. So requests take turns; a request that would wait behind too
many others, or too long, is refused at once (the API answers 503 with Retry-After) rather
than holding a web thread hostage.

The gate also keeps tenants apart inside the model. llama-cpp-python reuses the KV cache of the
previous prompt for as long as the next one matches it. Reused across tenants that is a timing
side channel: with the cache kept after each prompt (reset only on a tenant switch), a tenant's
repeated prompt took 0.6 ms when nobody else had generated in between and 1.5 s when someone
had, so its own timings told it when other tenants were active.

So every turn starts from one and the same model state: the shared prefix (prompt.py's
`shared_prefix`: the chat template's opening and SYSTEM_PROMPT, up to the first token that can
differ between requests), evaluated once per loaded model and kept. After every generation the
cache is cut back to it, and before every turn it is checked (and evaluated again if anything
else touched the model). What is reused is the platform's own text, byte for byte the same for
every tenant, so it tells no one anything; a tenant's instructions, sources, question and the
answer never outlive their generation, and every prompt evaluates everything after the
prefix, whoever generated before. A repeated deterministic question is served by the answer
cache instead.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from .. import compute_thread
from .model import LoadedModel, get_model
from .prompt import shared_prefix
from .turns import FairTurns


class GeneratorBusy(Exception):
    """The generation queue is full, or the wait ran out. Retry after `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


# The shared prefix of each loaded model, keyed by its llama.cpp object (models differ in
# template and vocabulary; a model that is closed and collected takes its entry with it).
_prefixes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_prefixes_lock = threading.Lock()


def prefix_tokens(model: LoadedModel) -> list[int]:
    """The tokens kept in `model`'s cache between generations (computed once per model; none
    with LLM_PREFIX_REUSE off: every turn then starts from an empty cache)."""
    if not settings.LLM_PREFIX_REUSE:
        return []
    prefix = _prefixes.get(model.llm)
    if prefix is None:
        with _prefixes_lock:
            prefix = _prefixes.get(model.llm)
            if prefix is None:
                prefix = _prefixes[model.llm] = shared_prefix(model)
    return prefix


def holds_only_prefix(model: LoadedModel) -> bool:
    """Whether `model`'s cached tokens are exactly its shared prefix, nothing more."""
    prefix = prefix_tokens(model)
    llm = model.llm
    return llm.n_tokens == len(prefix) and llm.input_ids[: len(prefix)].tolist() == prefix


def prefix_restore(model: LoadedModel) -> None:
    """Leave `model` holding its shared prefix and nothing else (call inside the turn).

    After a generation whose prompt began with the prefix this only cuts the cache back (a
    KV-cache removal, microseconds); otherwise (the first turn, or someone reset or evaluated
    other tokens) the prefix is evaluated afresh.
    """
    prefix = prefix_tokens(model)
    llm = model.llm
    n = len(prefix)
    if llm.n_tokens >= n and llm.input_ids[:n].tolist() == prefix:
        if not llm._ctx.kv_cache_seq_rm(-1, n, -1):  # llama-cpp-python has no public call
            raise RuntimeError("llama.cpp could not cut the KV cache back to the prefix")
        llm.n_tokens = n
    else:
        llm.reset()
        compute_thread.run(llm.eval, prefix)
    # The logits are the last generation's (or the prefix's): the next prompt's own tokens,
    # of which it always has at least one after the prefix, are evaluated before sampling.
    llm._requires_eval = True


class GenerationGate:
    def __init__(self, *, max_waiting: int, timeout: float):
        self.max_waiting = max_waiting
        self.timeout = timeout
        self._turns = FairTurns()  # round-robin across tenants, not lock order (turns.py)
        self._count_lock = threading.Lock()
        self._waiting = 0
        self._held: LoadedModel | None = None  # the model of the turn in progress

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def turn(self, model: LoadedModel | None = None, party: object = None) -> Iterator[LoadedModel]:
        """The model, exclusively, for the length of the block."""
        model = self.acquire(model, party)
        try:
            yield model
        finally:
            self.release()

    def acquire(self, model: LoadedModel | None = None, party: object = None) -> LoadedModel:
        """Wait for the turn; the model (`model`, else the default) holds only its shared prefix.

        `party` (the tenant's id) is whose turn it is: turns go round-robin across parties."""
        model = model or get_model()  # load outside the turn: a first load is not someone's wait
        prefix_tokens(model)  # tokenized outside the turn too, once per model
        with self._count_lock:
            if self._waiting >= self.max_waiting:
                raise GeneratorBusy(
                    f"{self._waiting} generations are already waiting; try again shortly.",
                    retry_after=max(1, round(self.timeout / 4)),
                )
            self._waiting += 1
        try:
            started = time.monotonic()
            if not self._turns.acquire(party, timeout=self.timeout):
                raise GeneratorBusy(
                    f"No generation slot within {time.monotonic() - started:.0f} s.",
                    retry_after=max(1, round(self.timeout / 4)),
                )
        finally:
            with self._count_lock:
                self._waiting -= 1
        try:
            if not holds_only_prefix(model):  # already so after any turn that released
                prefix_restore(model)
        except BaseException:
            self._turns.release()
            raise
        self._held = model
        return model

    def release(self) -> None:
        """End the turn: the model's cache is cut back to the shared prefix first, so nothing
        of this generation's prompt or answer is left for the next one to reuse."""
        model, self._held = self._held, None
        try:
            if model is not None:
                try:
                    prefix_restore(model)
                except Exception:
                    model.llm.reset()  # forget everything: the next turn evaluates the prefix
        finally:
            self._turns.release()


_gate: GenerationGate | None = None
_gate_lock = threading.Lock()


def get_gate() -> GenerationGate:
    global _gate
    if _gate is None:
        with _gate_lock:
            if _gate is None:
                _gate = GenerationGate(
                    max_waiting=settings.LLM_QUEUE_MAX, timeout=settings.LLM_QUEUE_TIMEOUT_SECONDS
                )
    return _gate
