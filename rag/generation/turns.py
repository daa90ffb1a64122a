"""Turns at one resource, handed out round-robin across whoever waits (tenants, for the gate).

Why: a plain lock serves its waiters in no promised order (in practice whoever wakes first), so
a tenant with eight generations waiting could take eight turns in a row while another's one
question waited behind them all. Here each waiting party has its own line, and the turn goes
to the parties in rotation: a party that just had a turn goes to the back, behind everyone else
who waits. Within a party, first come, first served. B's question then waits for at most one of
A's generations, however many A has queued (tests/rag/test_generation_turns.py).

Nothing here knows about models or tenants: a party is any hashable key.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Hashable


class FairTurns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        # Parties in the order they get their next turn, each with its waiters in arrival order.
        self._lines: OrderedDict[Hashable, deque[object]] = OrderedDict()
        self._granted: object | None = None

    @property
    def waiting(self) -> int:
        with self._cond:
            return sum(len(line) for line in self._lines.values())

    def waiting_for(self, party: Hashable) -> int:
        with self._cond:
            return len(self._lines.get(party, ()))

    def acquire(self, party: Hashable, timeout: float) -> bool:
        """Wait for a turn, at most `timeout` seconds; False if none came."""
        with self._cond:
            if not self._busy and not self._lines:
                self._busy = True
                return True
            ticket = object()
            self._lines.setdefault(party, deque()).append(ticket)
            deadline = time.monotonic() + timeout
            while self._granted is not ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._withdraw(party, ticket)
                    return False
                self._cond.wait(remaining)
            self._granted = None
            return True

    def release(self) -> None:
        """End the turn: the next party in rotation gets it (and goes to the back)."""
        with self._cond:
            if not self._lines:
                self._busy = False
                return
            party, line = next(iter(self._lines.items()))
            self._granted = line.popleft()
            del self._lines[party]
            if line:
                self._lines[party] = line  # re-inserted: behind every other waiting party
            self._cond.notify_all()

    def _withdraw(self, party: Hashable, ticket: object) -> None:
        line = self._lines.get(party)
        if line is None:
            return
        line.remove(ticket)
        if not line:
            del self._lines[party]
