"""The generation gate: one generation at a time, a bounded queue, no prompt state shared
between tenants (only the platform's own prefix, the same for all: test_prompt_prefix.py)."""

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


def test_every_generation_starts_from_the_same_state():
    from rag.generation.gate import prefix_tokens
    from rag.generation.model import get_model

    model = get_model()
    llm = model.llm
    gate = GenerationGate(max_waiting=4, timeout=5)
    seen = []
    for word in ("alpha", "beta gamma", "delta epsilon zeta", "eta"):
        gate.acquire()  # whoever asks: the gate does not even know the tenant
        seen.append(llm.input_ids[: llm.n_tokens].tolist())
        llm.eval(model.tokenize(f"Tenant word {word}.", special=False))
        gate.release()
    # Every turn sees the shared prefix and nothing else: reusing more would time who
    # generated last.
    assert seen == [prefix_tokens(model)] * 4


def test_a_tenant_switch_forgets_the_previous_prompt():
    from rag.generation.gate import prefix_tokens
    from rag.generation.model import get_model

    model = get_model()
    gate = GenerationGate(max_waiting=4, timeout=5)
    tokens = model.tokenize("The secret word of tenant A is heliotrope.", special=False)
    prefix = prefix_tokens(model)
    gate.acquire()
    model.llm.eval(tokens)
    assert model.llm.n_tokens == len(prefix) + len(tokens)
    gate.release()
    gate.acquire()
    try:
        # Nothing of A's prompt is left to match a prefix: only the platform's own.
        assert model.llm.input_ids[: model.llm.n_tokens].tolist() == prefix
    finally:
        gate.release()
