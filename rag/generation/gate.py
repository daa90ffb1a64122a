"""One generation at a time per process, with a bounded queue in front of it.

llama.cpp contexts are not thread-safe, and a CPU running two decodes at once finishes both
later than one after the other. So requests take turns; a request that would wait behind too
many others, or too long, is refused at once (the API answers 503 with Retry-After) rather
than holding a web thread hostage.

The gate also keeps tenants apart inside the model: llama-cpp-python reuses the KV cache of the
previous prompt when the next one shares its prefix. The gate resets it before every
generation, not only when the tenant changes: a reset only on a tenant switch made a tenant's
repeated prompt take 0.6 ms when nobody else had generated in between and 1.5 s when someone
had, so its own timings told it when other tenants were active. Every prompt is now evaluated
whole; a repeated deterministic question is served by the answer cache instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from .model import LoadedModel, get_model


class GeneratorBusy(Exception):
    """The generation queue is full, or the wait ran out. Retry after `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


class GenerationGate:
    def __init__(self, *, max_waiting: int, timeout: float):
        self.max_waiting = max_waiting
        self.timeout = timeout
        self._turn = threading.Lock()
        self._count_lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def turn(self) -> Iterator[LoadedModel]:
        """The model, exclusively, for the length of the block."""
        self.acquire()
        try:
            yield get_model()
        finally:
            self.release()

    def acquire(self) -> LoadedModel:
        model = get_model()  # load outside the turn: a first load is not someone's wait
        with self._count_lock:
            if self._waiting >= self.max_waiting:
                raise GeneratorBusy(
                    f"{self._waiting} generations are already waiting; try again shortly.",
                    retry_after=max(1, round(self.timeout / 4)),
                )
            self._waiting += 1
        try:
            started = time.monotonic()
            if not self._turn.acquire(timeout=self.timeout):
                raise GeneratorBusy(
                    f"No generation slot within {time.monotonic() - started:.0f} s.",
                    retry_after=max(1, round(self.timeout / 4)),
                )
        finally:
            with self._count_lock:
                self._waiting -= 1
        model.llm.reset()  # no prefix reuse: its speed-up would show who generated last
        return model

    def release(self) -> None:
        self._turn.release()


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
