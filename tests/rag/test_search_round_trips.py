"""Round trips of one `POST /api/v1/search`: every SQL statement the request sends, on every
Django connection (the platform's, the metering one, the tenant's data alias), and every Redis
command, counted per isolation mode so that a change adding one fails here.

Counted, not timed (timings belong in benchmarks/): a round trip is the cost that does not
shrink with a faster machine, and what a placement far from the web process multiplies.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import ExitStack

import pytest
import redis.connection
from django.db import connections

from tenants import placement
from tenants.after_response import deferred_running
from tests.helpers import MODES, bearer
from tests.rag.chunks import fill_chunks

QUERY = "passage of the tenant"


class StatementLog:
    """Every statement sent through Django's connections while it is active (execute_wrapper
    on each configured alias, the tenant's run-time alias included once registered), each
    marked with whether it was sent after the response (tenants.after_response)."""

    def __init__(self):
        self.statements: list[tuple[str, str, bool]] = []
        self._stack = ExitStack()

    def __enter__(self):
        for conn in connections.all(initialized_only=False):
            self._stack.enter_context(conn.execute_wrapper(self._wrapper(conn.alias)))
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _wrapper(self, alias):
        def record(execute, sql, params, many, context):
            self.statements.append((alias, sql, deferred_running()))
            return execute(sql, params, many, context)

        return record

    def before_response(self) -> list[tuple[str, str]]:
        return [(alias, sql) for alias, sql, after in self.statements if not after]

    def after_response(self) -> list[tuple[str, str]]:
        return [(alias, sql) for alias, sql, after in self.statements if after]


@pytest.fixture
def redis_commands(monkeypatch) -> Counter:
    """Redis commands this thread sends while the test runs, by name, counted where redis-py
    packs them for the wire (single commands and pipelines alike). Counted on the client: the
    server's own statistics would count the Celery worker's polling too."""
    sent: Counter = Counter()
    me = threading.get_ident()
    connection_class = redis.connection.AbstractConnection
    pack_command, pack_commands = connection_class.pack_command, connection_class.pack_commands

    def _name(args) -> str:
        first = args[0]
        return (first.decode() if isinstance(first, bytes) else str(first)).lower()

    def counting_pack_command(self, *args):
        if threading.get_ident() == me:
            sent[_name(args)] += 1
        return pack_command(self, *args)

    def counting_pack_commands(self, commands):
        commands = list(commands)
        if threading.get_ident() == me:
            sent.update(_name(args) for args in commands)
        return pack_commands(self, commands)

    monkeypatch.setattr(connection_class, "pack_command", counting_pack_command)
    monkeypatch.setattr(connection_class, "pack_commands", counting_pack_commands)
    return sent


def _search_counted(api, key: str, redis_commands: Counter, **params):
    redis_commands.clear()
    with StatementLog() as log:
        response = api.post(
            "/api/v1/search", {"query": QUERY, **params}, format="json", **bearer(key)
        )
    assert response.status_code == 200, response.content
    return log, Counter(redis_commands), response.json()


def _listing(statements) -> str:
    return "\n".join(f"  {alias}: {' '.join(sql.split())[:160]}" for alias, sql in statements)


# The most statements a warm hybrid search may send per isolation mode before its response
# (embedding cached, connections open), as measured on 2026-12-02: key lookup (1), quota and
# admission in one (1), one tenant-bound transaction: bind, cached query vector, tenant size
# and index settings, vector ranking, word split, word counts, keyword ranking, hits (8).
# After the response: ledger upsert, query log bind and insert (3); the key's last-used touch
# only once a minute. Lower it when a cut lands; raise it only with a reason. (BEGIN/COMMIT
# and Django's per-request health check are sent by the driver, not through execute_wrapper:
# not counted.) Before issue 18's cuts: 18 statements before the response, none after.
MAX_BEFORE_RESPONSE = {"pool": 10, "bridge": 10, "silo": 10}
MAX_AFTER_RESPONSE = 3


@pytest.mark.parametrize("mode", MODES)
def test_a_warm_hybrid_search_sends_few_statements(
    make_tenant, make_key, api, redis_commands, mode
):
    tenant = make_tenant(mode)
    fill_chunks(tenant, 30, seed=7)
    key = make_key(tenant, scopes=["query"])
    # Registers the tenant's run-time alias (a silo's) so that its connection is counted.
    placement.alias_for(tenant)
    # The first search embeds the query and caches it; the second is the steady state.
    _search_counted(api, key, redis_commands, mode="hybrid")
    log, redis_used, body = _search_counted(api, key, redis_commands, mode="hybrid")
    assert body["results"] and all(tenant.slug in hit["text"] for hit in body["results"])
    before, after = log.before_response(), log.after_response()
    print(
        f"\n[{mode}] {len(before)} statements before the response "
        f"{dict(Counter(a for a, _ in before))}, {len(after)} after, redis {dict(redis_used)}"
        f"\n{_listing(before)}\n after:\n{_listing(after)}"
    )
    assert len(before) <= MAX_BEFORE_RESPONSE[mode], _listing(before)
    assert len(after) <= MAX_AFTER_RESPONSE, _listing(after)
    # What follows the response is the metering and the log, and they were written.
    assert {sql.split()[0].upper() for _, sql in after} <= {"INSERT", "SELECT", "WITH"}
    assert any("tenants_usagerecord" in sql for _, sql in after), _listing(after)
    assert any("rag_querylog" in sql for _, sql in after), _listing(after)
    assert not redis_used, redis_used
