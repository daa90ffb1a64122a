"""Round trips of one `POST /api/v1/search`: every SQL statement the request sends, on every
Django connection (the platform's, the metering one, the tenant's data alias), and every Redis
command, counted per isolation mode so that a change adding one fails here.

Counted, not timed (timings belong in benchmarks/): a round trip is the cost that does not
shrink with a faster machine, and what a placement far from the web process multiplies.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack

import pytest
from django.db import connections

from tenants import placement
from tenants.services.quotas import redis_client
from tests.helpers import MODES, bearer
from tests.rag.chunks import fill_chunks

QUERY = "passage of the tenant"


def _first_word(sql: str) -> str:
    words = sql.split()
    return words[0].upper() if words else "?"


class StatementLog:
    """Every statement sent through Django's connections while it is active (execute_wrapper
    on each configured alias, the tenant's run-time alias included once registered)."""

    def __init__(self):
        self.statements: list[tuple[str, str]] = []
        self._stack = ExitStack()

    def __enter__(self):
        for conn in connections.all(initialized_only=False):
            self._stack.enter_context(conn.execute_wrapper(self._wrapper(conn.alias)))
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _wrapper(self, alias):
        def record(execute, sql, params, many, context):
            self.statements.append((alias, sql))
            return execute(sql, params, many, context)

        return record

    def per_alias(self) -> Counter:
        return Counter(alias for alias, _ in self.statements)


def _redis_calls() -> Counter:
    """Commands the test's own Redis has served, by name (the run's throwaway server)."""
    stats = redis_client().info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()})


def _search_counted(api, key: str, **params) -> tuple[StatementLog, Counter, dict]:
    before = _redis_calls()
    with StatementLog() as log:
        response = api.post(
            "/api/v1/search", {"query": QUERY, **params}, format="json", **bearer(key)
        )
    redis_used = _redis_calls() - before
    redis_used["info"] -= 1  # our own INFO
    assert response.status_code == 200, response.content
    return log, +redis_used, response.json()


# The most statements a warm hybrid search may send per isolation mode (embedding cached,
# connections open), as measured on 2026-12-02: key lookup and last-used touch (2), quota
# read and admission (2), embedding cache bind and read (2), search bind and 8 statements
# (9), ledger upsert (1), query log bind and insert (2). Lower it when a cut
# lands; raise it only with a reason. (BEGIN/COMMIT of each tenant_context and Django's
# per-request health check are sent by the driver, not through execute_wrapper: not counted.)
MAX_STATEMENTS = {"pool": 18, "bridge": 18, "silo": 18}


@pytest.mark.parametrize("mode", MODES)
def test_a_warm_hybrid_search_sends_few_statements(make_tenant, make_key, api, mode):
    tenant = make_tenant(mode)
    fill_chunks(tenant, 30, seed=7)
    key = make_key(tenant, scopes=["query"])
    # Registers the tenant's run-time alias (a silo's) so that its connection is counted.
    placement.alias_for(tenant)
    # The first search embeds the query and caches it; the second is the steady state.
    _search_counted(api, key, mode="hybrid")
    log, redis_used, body = _search_counted(api, key, mode="hybrid")
    assert body["results"] and all(tenant.slug in hit["text"] for hit in body["results"])
    breakdown = "\n".join(f"  {alias}: {sql[:160]}" for alias, sql in log.statements)
    print(
        f"\n[{mode}] {len(log.statements)} statements {dict(log.per_alias())}, "
        f"redis {dict(redis_used)}\n{breakdown}"
    )
    assert len(log.statements) <= MAX_STATEMENTS[mode], breakdown
    assert not redis_used, redis_used
