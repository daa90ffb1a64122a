"""Tenantry behind a real PgBouncer in transaction mode, two server connections per pool.

Transaction pooling lends a server connection to a client for one transaction only, so any
session state one tenant's request leaves behind would be the next tenant's. The platform binds
a tenant with `set_config(..., true)` inside a transaction, which should make that impossible:
these tests hammer a real gunicorn and a real Celery worker whose app-role connections all go
through PgBouncer (pool, bridge and silo tenants; metering and requests sharing one pool of 2),
then look at what the server connections carry. Sharing one small pool also proves that no
request waits for a second connection while it holds one in a transaction (which deadlocked
it before uploads read their quota ahead of the store's transaction). docs/pgbouncer.md is the production side of this.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from django.test import override_settings

from config import embedded
from tests.helpers import connect, superuser, wait_until
from tests.pgbouncer import APPLICATION_NAME, PgBouncer
from tests.server import WebServer
from tests.workers import Worker

POOL_SIZE = 2
THREADS_PER_TENANT = 2
REQUESTS_PER_THREAD = 10
# Each thread's requests, in order: uploads and answers are few (answers run the real model).
PLAN = ["upload", "search", "list", "search", "answer"] + ["search", "list"] * 2 + ["search"]
assert len(PLAN) == REQUESTS_PER_THREAD
# Words every tenant's documents share, so a search that crossed tenants would find the others'.
COMMON = "The burrow keeper feeds the animals meadow hay at dawn and counts them at dusk."


@pytest.fixture
def pgbouncer():
    with PgBouncer(pool_size=POOL_SIZE) as bouncer:
        yield bouncer


@pytest.fixture
def services(pgbouncer, tmp_path, monkeypatch):
    """A gunicorn and a Celery worker whose app-role connections (the request's own and
    metering's, both from DATABASE_URL) go through PgBouncer. The owner role, for migrations
    and provisioning, stays direct (docs/pgbouncer.md says why).
    """
    web = WebServer(_mkdir(tmp_path / "web"))
    worker = Worker(_mkdir(tmp_path / "worker"), beat=False)
    # service_env() starts from os.environ. Behind a pooler a silo's client connections may be kept: PgBouncer bounds the servers.
    monkeypatch.setenv("SILO_CONN_MAX_AGE", "60")
    try:
        # service_env() reads settings.APP_DATABASE_URL when each process starts.
        with override_settings(APP_DATABASE_URL=pgbouncer.url()), ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(web.start), pool.submit(worker.start)]:
                started.result()
        yield web, worker
    finally:
        web.stop()
        worker.stop()


def _mkdir(path):
    path.mkdir()
    return path


@dataclass
class Tenant:
    marker: str
    key: str
    slug: str
    database: str  # the PostgreSQL database of its data plane
    ids: set[str] = field(default_factory=set)  # documents this tenant created
    seen: set[str] = field(default_factory=set)  # documents its responses named
    titles: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _call(base: str, key: str, method: str, path: str, body: dict | None = None):
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _document(tenant: Tenant, name: str) -> dict:
    word = f"{tenant.marker}-{tenant.slug}"
    return {
        "title": f"{word} {name}",
        "text": f"# {word} {name}\n\n{COMMON} Only {word} lives here ({name}).",
    }


def _step(base: str, tenant: Tenant, kind: str, n: str) -> tuple[int, object]:
    if kind == "upload":
        status, body = _call(base, tenant.key, "POST", "/api/v1/documents", _document(tenant, n))
        if status < 300:
            with tenant.lock:
                tenant.ids.add(body["id"])
        return status, body
    if kind == "search":
        status, body = _call(
            base, tenant.key, "POST", "/api/v1/search", {"query": "who feeds the animals hay"}
        )
        found = (
            [(hit["document_id"], hit["title"]) for hit in body["results"]] if status < 300 else []
        )
    elif kind == "list":
        status, body = _call(base, tenant.key, "GET", "/api/v1/documents?limit=500")
        found = [(doc["id"], doc["title"]) for doc in body["results"]] if status < 300 else []
    else:
        status, body = _call(
            base,
            tenant.key,
            "POST",
            "/api/v1/answer",
            {"question": f"Who feeds the animals? ({n})", "max_tokens": 8, "cache": False},
        )
        found = [(c["document_id"], c["title"]) for c in body["citations"]] if status < 300 else []
    with tenant.lock:
        tenant.seen.update(doc_id for doc_id, _ in found)
        tenant.titles.update(title for _, title in found)
    return status, body


def _wait_ready(base: str, tenant: Tenant, timeout: float = 90) -> None:
    def states() -> dict[str, str]:
        status, body = _call(base, tenant.key, "GET", "/api/v1/documents?limit=500")
        assert status == 200, body
        return {doc["id"]: doc["status"] for doc in body["results"]}

    def ingested() -> bool:
        now = states()
        return set(now) >= tenant.ids and all(now[i] == "ready" for i in tenant.ids)

    wait_until(
        ingested,
        timeout=timeout,
        interval=0.3,
        message=lambda: f"not ingested through PgBouncer: {states()}",
    )


def _server_connections() -> dict[tuple[str, str], int]:
    """PgBouncer's connections as the real server sees them, per (application name, database)."""
    with superuser() as conn:
        rows = conn.execute(
            "SELECT application_name, datname, count(*) FROM pg_stat_activity "
            "WHERE usename = %s AND application_name = ANY(%s) GROUP BY 1, 2",
            [embedded.APP_ROLE, [APPLICATION_NAME]],
        ).fetchall()
    return {(name, db): n for name, db, n in rows}


def test_tenants_hammering_through_transaction_pooling_stay_apart(
    pgbouncer, services, make_tenant, make_key
):
    web, _ = services
    tenants = [
        Tenant(
            marker=marker,
            key=make_key(t, scopes=("ingest", "query")),
            slug=t.slug,
            database=t.silo_database or embedded.PLATFORM_DB,
        )
        for marker, t in (
            ("aardvark", make_tenant("pool")),
            ("zebra", make_tenant("pool")),
            ("quokka", make_tenant("bridge")),
            # Reaches its own database through PgBouncer's `*` entry: a pool of its own.
            ("okapi", make_tenant("silo")),
        )
    ]
    for tenant in tenants:
        for n in ("seed-1", "seed-2"):
            status, body = _step(web.url, tenant, "upload", n)
            assert status == 202, body
    for tenant in tenants:
        _wait_ready(web.url, tenant)

    samples: list[dict[tuple[str, str], int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(_server_connections())
            time.sleep(0.05)

    def hammer(tenant: Tenant, thread: int) -> list[tuple[str, int, object]]:
        return [
            (kind, *_step(web.url, tenant, kind, f"live-{thread}-{i}"))
            for i, kind in enumerate(PLAN)
        ]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(len(tenants) * THREADS_PER_TENANT) as pool:
            runs = [
                pool.submit(hammer, tenant, thread)
                for tenant in tenants
                for thread in range(THREADS_PER_TENANT)
            ]
            outcomes = [outcome for run in runs for outcome in run.result()]
    finally:
        done.set()
        sampler.join(timeout=10)
    elapsed = time.monotonic() - started

    failures = [(kind, status, body) for kind, status, body in outcomes if not 200 <= status < 300]
    assert not failures, f"{failures}\n--- pgbouncer ---\n{pgbouncer.log()[-3000:]}"
    assert len(outcomes) == len(tenants) * THREADS_PER_TENANT * REQUESTS_PER_THREAD
    for tenant in tenants:
        _wait_ready(web.url, tenant)
        others = {t.marker for t in tenants} - {tenant.marker}
        assert tenant.seen, f"{tenant.marker} found nothing"
        assert tenant.seen <= tenant.ids, f"{tenant.marker} saw {tenant.seen - tenant.ids}"
        assert all(title.startswith(f"{tenant.marker}-") for title in tenant.titles), tenant.titles
        assert not any(m in title for m in others for title in tenant.titles)

    # PgBouncer really was the path, and it never used more server connections than its pools.
    silo = tenants[-1].database
    pools = {
        (APPLICATION_NAME, embedded.PLATFORM_DB): (embedded.PLATFORM_DB, POOL_SIZE),
        (APPLICATION_NAME, silo): (silo, POOL_SIZE),
    }
    peaks = {pool: max((s.get(pool, 0) for s in samples), default=0) for pool in pools}
    assert set().union(*samples) <= set(pools), samples[-5:]
    for pool, (_, size) in pools.items():
        assert 1 <= peaks[pool] <= size, (pool, peaks, samples[-20:])
    stats = {row["database"]: row for row in pgbouncer.show("STATS")}
    assert stats[embedded.PLATFORM_DB]["total_xact_count"] > len(outcomes)
    # More clients than servers: some waited for a server connection (microseconds, summed).
    assert stats[embedded.PLATFORM_DB]["total_wait_time"] > 0

    for database, size in pools.values():
        _assert_no_session_state_left(pgbouncer, database, size)
    print(f"\n{len(outcomes)} requests in {elapsed:.1f}s; peak server connections {peaks}")


def _assert_no_session_state_left(pgbouncer: PgBouncer, database: str, pool_size: int) -> None:
    """Every server connection of the pool is as a fresh session would be: no tenant, the
    default search_path, no rows visible. Checked from more clients than the pool has servers.

    Holders take every server connection; each in turn lets its own go, so a new client,
    outside any transaction, can only be lent that one.
    """
    with connect("default") as direct:
        fresh = direct.execute("SELECT current_setting('search_path')").fetchone()[0]
    probe = (
        "SELECT pg_backend_pid(), current_setting('app.tenant_id', true), "
        "current_setting('search_path'), (SELECT count(*) FROM rag_document)"
    )

    def check(row) -> int:
        pid, tenant_id, search_path, rows = row
        assert tenant_id in (None, ""), (database, pid, tenant_id)
        assert search_path == fresh, (database, pid, search_path)
        assert rows == 0, (database, pid, rows)
        return pid

    used = {
        row["remote_pid"]
        for row in pgbouncer.show("SERVERS")
        if row["user"] == embedded.APP_ROLE and row["database"] == database
    }
    assert used, f"PgBouncer holds no server connection to {database}"
    with contextlib.ExitStack() as stack:
        holders = [stack.enter_context(pgbouncer.connect(database=database)) for _ in used]
        held = []
        for holder in holders:
            holder.execute("BEGIN")
            held.append(check(holder.execute(probe).fetchone()))
        assert set(held) == used, (held, used)
        for holder, pid in zip(holders, held, strict=True):
            holder.execute("COMMIT")
            with pgbouncer.connect(database=database) as client:
                assert check(client.execute(probe).fetchone()) == pid
            holder.execute("BEGIN")
            assert holder.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        for holder in holders:
            holder.execute("COMMIT")
    assert len(used) <= pool_size, used


# --- raw SQL through PgBouncer -------------------------------------------------------------


@pytest.fixture
def documents_of(make_tenant):
    from rag.models import Document
    from tenants.context import tenant_context

    tenant = make_tenant("pool")
    with tenant_context(tenant):
        for i in range(3):
            Document.objects.create(title=f"doc-{i}", content_hash=uuid.uuid4().hex.ljust(64, "0"))
    return tenant


def _count_with_pid(client) -> tuple[int, int]:
    return client.execute("SELECT count(*), pg_backend_pid() FROM rag_document").fetchone()


def test_a_transaction_local_binding_ends_with_its_transaction(pgbouncer, documents_of):
    tenant = documents_of
    with pgbouncer.connect() as first, pgbouncer.connect() as second:
        with first.transaction():
            first.execute("SELECT set_config('app.tenant_id', %s, true)", [str(tenant.id)])
            bound, pid = _count_with_pid(first)
        after, next_pid = _count_with_pid(second)
    assert bound == 3
    # PgBouncer lends the server connection just released (LIFO): the same session.
    assert next_pid == pid
    assert after == 0


def test_a_session_level_setting_would_leak_to_the_next_client(pgbouncer, documents_of):
    """Why the platform never binds with a plain SET: in transaction mode the next client
    inherits it (the check above would catch a regression to session-level binding)."""
    tenant = documents_of
    with pgbouncer.connect() as first, pgbouncer.connect() as second:
        first.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant.id)])
        _, pid = _count_with_pid(first)
        leaked, next_pid = _count_with_pid(second)
        second.execute("RESET app.tenant_id")
    assert next_pid == pid
    assert leaked == 3
