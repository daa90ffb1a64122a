"""The generation gate: one generation at a time, a bounded queue, no prompt state shared
between tenants."""

import threading

import pytest

from rag.generation.gate import GenerationGate, GeneratorBusy
from tests.helpers import wait_until


def test_waiting_beyond_the_queue_is_refused_at_once():
    gate = GenerationGate(max_waiting=1, timeout=5)
    gate.acquire()
    waiter_in = threading.Event()
    results = []

    def wait_turn():
        waiter_in.set()
        try:
            gate.acquire()
            results.append("got it")
            gate.release()
        except GeneratorBusy:
            results.append("busy")

    waiter = threading.Thread(target=wait_turn)
    waiter.start()
    waiter_in.wait()
    wait_until(lambda: gate.waiting >= 1, timeout=10, interval=0.001, message="no one waits")
    with pytest.raises(GeneratorBusy) as refused:
        gate.acquire()
    assert refused.value.retry_after >= 1
    gate.release()
    waiter.join(10)
    assert results == ["got it"]


def test_a_wait_that_runs_out_is_refused():
    gate = GenerationGate(max_waiting=4, timeout=0.2)
    gate.acquire()
    with pytest.raises(GeneratorBusy):
        gate.acquire()
    gate.release()


def test_the_model_state_is_reset_before_every_generation(monkeypatch):
    from rag.generation.model import get_model

    llm = get_model().llm
    resets = []
    original = llm.reset
    monkeypatch.setattr(llm, "reset", lambda: (resets.append(1), original())[1])
    gate = GenerationGate(max_waiting=4, timeout=5)
    for _ in range(4):  # whoever asks: the gate no longer even knows the tenant
        gate.acquire()
        gate.release()
    # Every turn is reset: reusing a prefix would time who generated last.
    assert len(resets) == 4


def test_a_tenant_switch_forgets_the_previous_prompt():
    from rag.generation.model import get_model

    model = get_model()
    gate = GenerationGate(max_waiting=4, timeout=5)
    tokens = model.tokenize("The secret word of tenant A is heliotrope.", special=False)
    model.llm.reset()
    gate.acquire()
    model.llm.eval(tokens)
    assert model.llm.n_tokens == len(tokens)
    gate.release()
    gate.acquire()
    try:
        assert model.llm.n_tokens == 0  # nothing of A's prompt is left to match a prefix
    finally:
        gate.release()
