"""Generation turns go round-robin across tenants (rag/generation/turns.py), not in lock order:
a tenant with many generations queued cannot make another's one question wait behind them all.
"""

import threading

import pytest

from rag.generation.gate import GenerationGate
from rag.generation.turns import FairTurns
from tests.helpers import wait_until


def _queue(turns, party, served, label):
    def wait():
        assert turns.acquire(party, timeout=10)
        served.append(label)
        turns.release()

    thread = threading.Thread(target=wait)
    thread.start()
    return thread


@pytest.mark.unit
def test_a_tenant_that_queued_last_is_served_after_one_turn_of_the_flooder():
    turns, served = FairTurns(), []
    assert turns.acquire("holder", timeout=1)
    threads = []
    for i in range(4):  # A queues four, one after another, then B one
        threads.append(_queue(turns, "A", served, f"A{i}"))
        wait_until(lambda n=i + 1: turns.waiting == n, timeout=5, interval=0.001, message="queued")
    threads.append(_queue(turns, "B", served, "B0"))
    wait_until(lambda: turns.waiting == 5, timeout=5, interval=0.001, message="B queued")
    turns.release()
    for thread in threads:
        thread.join(10)
    # In lock order B would be last; round-robin gives it the second turn.
    assert served == ["A0", "B0", "A1", "A2", "A3"]


@pytest.mark.unit
def test_three_tenants_alternate_and_each_keeps_its_own_order():
    turns, served = FairTurns(), []
    assert turns.acquire("holder", timeout=1)
    threads = []
    for n, label in enumerate(("A0", "A1", "A2", "B0", "B1", "C0"), 1):
        threads.append(_queue(turns, label[0], served, label))
        wait_until(lambda n=n: turns.waiting == n, timeout=5, interval=0.001, message="queued")
    turns.release()
    for thread in threads:
        thread.join(10)
    assert served == ["A0", "B0", "C0", "A1", "B1", "A2"]


@pytest.mark.unit
def test_a_waiter_that_gives_up_leaves_no_trace():
    turns = FairTurns()
    assert turns.acquire("A", timeout=1)
    assert turns.acquire("B", timeout=0.05) is False
    assert turns.waiting == 0 and turns.waiting_for("B") == 0
    turns.release()
    assert turns.acquire("B", timeout=0.05)  # free again, at once
    turns.release()


def test_the_gate_hands_turns_round_robin_by_tenant():
    """Through the real gate and model: the turn order is by tenant, not by arrival."""
    gate, served = GenerationGate(max_waiting=8, timeout=30), []
    gate.acquire(party="holder")
    threads = []

    def ask(party, label):
        with gate.turn(party=party):
            served.append(label)

    for n, label in enumerate(("A0", "A1", "A2", "B0"), 1):
        threads.append(threading.Thread(target=ask, args=(label[0], label)))
        threads[-1].start()
        wait_until(lambda n=n: gate.waiting == n, timeout=30, interval=0.001, message="queued")
    gate.release()
    for thread in threads:
        thread.join(30)
    assert served == ["A0", "B0", "A1", "A2"]
