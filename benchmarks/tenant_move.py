"""Tenant moves: a pool tenant of N chunks moved live to a silo on a second PostgreSQL server
and back, under writes and searches through the real HTTP server, against a plain COPY of the
same rows between the same two servers.

Per size and direction: the move's total time, its copy and index phases, how long writes
were held (the move's own `fence_ms`), the longest wait a writing client saw (from its first
attempt until its upload was acknowledged, sleeping each 503's Retry-After between tries),
the searches that failed (there must be none), and every acknowledged upload found in the
tenant's placement afterwards. Throughput is the plain COPY's seconds over the move's copy
phase and over the whole move.

The baseline is a plain COPY of the same rows between the same servers: for each data-plane
table, `COPY (SELECT cols FROM table) TO STDOUT (FORMAT BINARY)` from the tenant's placement
(an owner connection bound to the tenant, as the move's) piped into `COPY ... FROM STDIN` of
scratch tables on the other server made `LIKE` the target's tables `INCLUDING ALL`: their
generated full-text column and their indexes (HNSW included) are what any copy of these rows
into such tables must fill. A second, "bare" baseline copies into tables of the bare columns
(the wire and the disk alone), reported beside it. The move does more than either: it
captures and replays changes, stages and INSERTs under row-level security into a pool, and
verifies checksums.

MOVE_DRAIN_SECONDS is 0 in this process: the drain is a fixed wait for requests that resolved
the old placement, not work, and would only add its seconds to every total. No Celery worker
runs: an upload is acknowledged when its document row commits (202), which is the write the
fence holds; its ingestion would only compete with the move for the cores.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.test import override_settings
from psycopg import sql

from config import embedded
from rag.models import Document
from tenants import pgconnect, placement
from tenants.context import tenant_context
from tenants.services.apikeys import apikey_create
from tenants.services.moves import move_run, move_start
from tenants.services.moves.endpoints import connect as placement_connect
from tenants.services.moves.tables import move_tables
from tenants.services.provisioning import tenant_create, tenant_delete
from tenants.services.quotas import quota_set
from tenants.services.servers import server_add, server_remove

from .common import query_texts, query_vectors, summary, synthetic_corpus
from .store import IndexPaused, load_chunks, prefill_query_vectors

SERVER = "bench-b"
TARGET_FENCE_MS = 2000
TARGET_THROUGHPUT_RATIO = 0.5
TARGET_AT_CHUNKS = 100_000
WRITE_GIVE_UP_SECONDS = 60
# Every quota an upload or a search meets, out of the way.
UNLIMITED = {
    **dict.fromkeys(("search_per_hour", "ingest_per_hour", "embeddings_per_hour"), 1_000_000),
    "max_documents": 1_000_000,
    "max_storage_bytes": 2**40,
}
UPLOAD_TEXT = (
    "# Move note {tag}\n\nThe harbour ledger {tag} records the lanterns and maps that came in "
    "with the morning boats while the tenant moved."
)


def bench_tenant_move(
    *, sizes: list[int], queries: int = 20, write_pause_s: float = 0.05, read_pause_s: float = 0.05
) -> dict:
    stamp = int(time.time())
    work = Path(tempfile.mkdtemp(prefix="tenantry-bench-move-"))
    out: dict = {
        "server": SERVER,
        "drain_seconds": 0,
        "write_pause_s": write_pause_s,
        "read_pause_s": read_pause_s,
        "sizes": {},
    }
    pauses = (write_pause_s, read_pause_s)
    try:
        with (
            override_settings(MOVE_DRAIN_SECONDS=0),
            ThreadPoolExecutor(1) as pool,
            _web_server(work, pool) as web,  # starts while the second server starts, data loads
            _second_server(work),
        ):
            for size in sizes:
                result = _bench_size(size, f"bm-{stamp}-{size}", web, queries, pauses)
                out["sizes"][str(size)] = result
                print(f"tenant_move {size}: {result}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the second server's data: GBs at 100k
    out["targets"] = _verdict(out["sizes"])
    return out


def _bench_size(size: int, slug: str, web, queries: int, pauses: tuple[float, float]) -> dict:
    tenant = tenant_create(slug=slug, mode="pool", server="default")
    try:
        quota_set(tenant=tenant, **UNLIMITED)
        corpus = synthetic_corpus(size, seed=31)
        started = time.perf_counter()
        # The pool's HNSW index is shared: rebuilt (over every pool tenant) before the move,
        # so that the move meets the index a live pool has.
        with IndexPaused(tenant):
            load_chunks(tenant, corpus.texts, corpus.vectors)
        load_s = round(time.perf_counter() - started, 1)
        texts = query_texts(queries, seed=32)
        prefill_query_vectors(tenant, texts, query_vectors(corpus, queries, seed=33))
        _, key = apikey_create(tenant=tenant, scopes=["query", "ingest"])
        client = _Client(web().url, key)
        client.search(texts[0])  # first-use costs (the placement's connections, imports)
        client.upload({"text": UPLOAD_TEXT.format(tag=f"{slug}-warm"), "title": "warm"})

        result: dict = {"chunks": size, "load_s": load_s, "baseline": {}, "moves": {}}
        b_owner = placement.server_settings(_server(), as_owner=True)
        platform_owner = dict(connections.settings["owner"])
        result["baseline"]["there"] = _plain_copy(tenant, b_owner, shaped=True)
        result["bare_baseline"] = {"there": _plain_copy(tenant, b_owner, shaped=False)}
        result["moves"]["there"] = _timed_move(tenant, client, texts, pauses, "silo", SERVER)
        tenant.refresh_from_db()
        result["baseline"]["back"] = _plain_copy(tenant, platform_owner, shaped=True)
        result["bare_baseline"]["back"] = _plain_copy(tenant, platform_owner, shaped=False)
        result["moves"]["back"] = _timed_move(tenant, client, texts, pauses, "pool", None)
        for direction, move in result["moves"].items():
            base = result["baseline"][direction]["seconds"]
            bare = result["bare_baseline"][direction]["seconds"]
            move["throughput_ratio_copy"] = _ratio(base, move["copy_s"])
            move["throughput_ratio_total"] = _ratio(base, move["total_s"])
            move["throughput_ratio_total_bare"] = _ratio(bare, move["total_s"])
        return result
    finally:
        tenant.refresh_from_db()
        tenant_delete(tenant=tenant)


def _ratio(baseline_s: float, move_s: float | None) -> float | None:
    return round(baseline_s / move_s, 3) if move_s else None


def _server():
    from tenants.models import DataServer

    return DataServer.objects.get(name=SERVER)


# --- the baseline ------------------------------------------------------------------------------


def _plain_copy(tenant, target_cfg: dict, *, shaped: bool) -> dict:
    """Every data-plane table of the tenant, COPYed as it is from its placement into scratch
    tables on the other server, one table after the other from one snapshot, as the move's
    copy goes. Timed from the first COPY to the last commit.

    `shaped`: the scratch tables are made `LIKE` the target's tables `INCLUDING ALL` (their
    generated full-text column, defaults and indexes, HNSW included; no policy, no foreign
    key): what any copy of these rows into such tables must do. Otherwise bare tables of the
    same columns: the wire and disk alone."""
    tables = move_tables()
    rows: dict[str, int] = {}
    scratch = {t.name: sql.Identifier(f"bench_copy_{t.name}") for t in tables}
    with (
        placement_connect(tenant) as src,
        pgconnect.connect(target_cfg, application_name="tenantry bench copy") as dst,
    ):
        for t in tables:
            dst.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch[t.name]))
            if shaped:
                dst.execute(
                    sql.SQL("CREATE TABLE {} (LIKE public.{} INCLUDING ALL)").format(
                        scratch[t.name], sql.Identifier(t.name)
                    )
                )
            else:
                dst.execute(
                    sql.SQL("CREATE TABLE {} AS SELECT {} FROM public.{} WITH NO DATA").format(
                        scratch[t.name], sql.SQL(t.column_list), sql.Identifier(t.name)
                    )
                )
        try:
            started = time.perf_counter()
            with src.transaction():
                src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                for t in tables:
                    out = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
                        sql.SQL(t.column_list), sql.Identifier(t.name)
                    )
                    into = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        scratch[t.name], sql.SQL(t.column_list)
                    )
                    with src.cursor() as s, dst.cursor() as d:
                        with s.copy(out) as reader, d.copy(into) as writer:
                            for block in reader:
                                writer.write(block)
                        rows[t.name] = d.rowcount
            seconds = time.perf_counter() - started
            size = dst.execute(
                "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relname = ANY(%s)",
                [[f"bench_copy_{t.name}" for t in tables]],
            ).fetchone()[0]
        finally:
            for t in tables:
                dst.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch[t.name]))
    return {"seconds": round(seconds, 3), "rows": rows, "mb": round(int(size or 0) / 2**20, 1)}


# --- one move under traffic ----------------------------------------------------------------------


def _timed_move(tenant, client: _Client, texts: list[str], pauses, to: str, server) -> dict:
    tenant.refresh_from_db()
    source = f"{tenant.isolation_mode}@{tenant.server_name}"
    traffic = _Traffic(client, texts, pauses, tag=f"{tenant.slug}-{to}")
    traffic.start()
    time.sleep(0.5)  # writes and reads flowing before the move starts
    phases = _Phases()
    started = time.perf_counter()
    move = move_start(tenant=tenant, to=to, server=server)
    move = move_run(move, progress=phases)
    total_s = time.perf_counter() - started
    time.sleep(0.5)  # and on the new placement after it
    traffic.stop()
    tenant.refresh_from_db()
    with tenant_context(tenant):
        found = Document.objects.filter(pk__in=traffic.acknowledged).count()
    progress = move.progress
    return {
        "from": source,
        "to": f"{tenant.isolation_mode}@{tenant.server_name}",
        "state": str(move.state),
        "error": move.error,
        "total_s": round(total_s, 3),
        "copy_s": progress.get("copy_seconds"),
        "index_s": progress.get("index_seconds"),
        "fence_ms": move.fence_ms,
        "applied_changes": progress.get("applied", 0),
        "phases_s": phases.durations(total_s),
        **traffic.figures(),
        "writes_lost": len(traffic.acknowledged) - found,
    }


class _Phases:
    """The move's progress callback: when each phase was first seen."""

    def __init__(self):
        self.started = time.perf_counter()
        self.seen: list[tuple[str, float]] = []

    def __call__(self, move) -> None:
        if not self.seen or self.seen[-1][0] != move.phase:
            self.seen.append((str(move.phase), time.perf_counter() - self.started))

    def durations(self, total_s: float) -> list[list]:
        ends = [t for _, t in self.seen[1:]] + [total_s]
        return [[p, round(end - t, 3)] for (p, t), end in zip(self.seen, ends, strict=True)]


class _Client:
    """HTTP calls of one tenant's key against the real server (a fresh connection each)."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key

    def post(self, path: str, body: dict) -> tuple[int, dict, dict]:
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(ValueError):
                return exc.code, dict(exc.headers), json.loads(exc.read())
            return exc.code, dict(exc.headers), {}

    def search(self, query: str) -> tuple[int, dict]:
        status, _, body = self.post("/api/v1/search", {"query": query, "k": 10, "mode": "vector"})
        return status, body

    def upload(self, body: dict) -> tuple[int, dict, dict]:
        return self.post("/api/v1/documents", body)


class _Traffic:
    """One writer uploading small documents and one reader searching, until stopped."""

    def __init__(self, client: _Client, texts: list[str], pauses, *, tag: str):
        self.client, self.texts, self.tag = client, texts, tag
        self.pauses = pauses  # (after each write, after each read)
        self.stopping = threading.Event()
        self.write_waits_ms: list[float] = []
        self.retried_writes = 0
        self.retries = 0
        self.failed_writes: list[str] = []
        self.acknowledged: list[str] = []
        self.read_ms: list[float] = []
        self.failed_reads: list[str] = []
        self.empty_reads = 0
        self.threads = [
            threading.Thread(target=self._write, name="move-writer", daemon=True),
            threading.Thread(target=self._read, name="move-reader", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=WRITE_GIVE_UP_SECONDS + 30)

    def _write(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            tag = f"{self.tag}-{n}-{uuid.uuid4().hex[:8]}"
            self._write_one({"text": UPLOAD_TEXT.format(tag=tag), "title": f"move {tag}"})
            self.stopping.wait(self.pauses[0])

    def _write_one(self, body: dict) -> None:
        first = time.perf_counter()
        tries = 0
        while True:
            tries += 1
            try:
                status, headers, payload = self.client.upload(body)
            except OSError as exc:
                self.failed_writes.append(f"{type(exc).__name__}: {exc}")
                return
            if status in (200, 202):
                self.write_waits_ms.append((time.perf_counter() - first) * 1000)
                self.acknowledged.append(payload["id"])
                if tries > 1:
                    self.retried_writes += 1
                    self.retries += tries - 1
                return
            if status != 503 or time.perf_counter() - first > WRITE_GIVE_UP_SECONDS:
                self.failed_writes.append(f"{status} {payload.get('code')}")
                return
            time.sleep(float(headers.get("Retry-After", "1")))

    def _read(self) -> None:
        i = 0
        while not self.stopping.is_set():
            i += 1
            started = time.perf_counter()
            try:
                status, body = self.client.search(self.texts[i % len(self.texts)])
            except OSError as exc:
                self.failed_reads.append(f"{type(exc).__name__}: {exc}")
                continue
            self.read_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                self.failed_reads.append(f"{status} {body.get('code')}")
            elif not body.get("results"):
                self.empty_reads += 1  # the tenant always has chunks: a read of nothing is wrong
            self.stopping.wait(self.pauses[1])

    def figures(self) -> dict:
        waits = self.write_waits_ms
        return {
            "writes": len(waits),
            "write_wait_ms": summary(waits, 1),
            "max_write_wait_ms": round(max(waits), 1) if waits else None,
            "writes_retried": self.retried_writes,
            "write_retries_503": self.retries,
            "failed_writes": len(self.failed_writes),
            "failed_write_examples": self.failed_writes[:5],
            "reads": len(self.read_ms),
            "read_ms": summary(self.read_ms, 1),
            "failed_reads": len(self.failed_reads),
            "failed_read_examples": self.failed_reads[:5],
            "empty_reads": self.empty_reads,
        }


# --- the servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _second_server(work: Path):
    """A second embedded PostgreSQL in `work`, registered as the data-plane server SERVER;
    unregistered and stopped after (a tenant a failed move left there is deleted first)."""
    pgdata = work / "pgdata"
    pg = embedded.start_postgres(pgdata, passwords_from=settings.DATA_DIR)
    try:
        server_add(name=SERVER, dsn=pg.url(embedded.OWNER_ROLE, database="tenantry_data"))
        try:
            yield
        finally:
            from tenants.models import Tenant, TenantMove

            for tenant in Tenant.objects.filter(server__name=SERVER):
                tenant_delete(tenant=tenant)
            TenantMove.objects.filter(target_server__name=SERVER).delete()
            TenantMove.objects.filter(source_server__name=SERVER).delete()
            server_remove(name=SERVER)
    finally:
        embedded.stop_postgres(pgdata)


@contextlib.contextmanager
def _web_server(work: Path, pool: ThreadPoolExecutor):
    """gunicorn as `make run` starts it (platform/gunicorn.conf.py, 8 threads), without the
    model preloads: searches find their query embeddings cached, uploads only enqueue.
    Started in `pool`; yields a callable that waits until it answers and returns it."""
    from tests.helpers import service_env
    from tests.server import WebServer

    env = service_env(EMBEDDING_PRELOAD="false", LLM_PRELOAD="false")
    server = WebServer(work, threads=8, env=env, collect_static=False)
    starting = pool.submit(server.start)

    def ready() -> WebServer:
        starting.result()
        return server

    try:
        yield ready
    finally:
        starting.exception()  # waits until it started or failed, so that it can be stopped
        server.stop()


# --- the verdict ---------------------------------------------------------------------------------


def _verdict(sizes: dict) -> dict:
    """The targets, judged at the largest size measured (they are stated at 100k chunks)."""
    if not sizes:
        return {}
    at = max(sizes, key=int)
    moves = sizes[at]["moves"]
    fences = {d: m["fence_ms"] for d, m in moves.items()}
    copy = {d: m["throughput_ratio_copy"] for d, m in moves.items()}
    total = {d: m["throughput_ratio_total"] for d, m in moves.items()}
    done = all(m["state"] == "done" for m in moves.values())
    return {
        "judged_at_chunks": int(at),
        "stated_at_chunks": TARGET_AT_CHUNKS,
        "fence_ms_max": TARGET_FENCE_MS,
        "throughput_ratio_min": TARGET_THROUGHPUT_RATIO,
        "fence_ms": fences,
        "fence_met": done and all(f is not None and f <= TARGET_FENCE_MS for f in fences.values()),
        "throughput_ratio_copy": copy,
        "throughput_copy_met": all(
            r is not None and r >= TARGET_THROUGHPUT_RATIO for r in copy.values()
        ),
        "throughput_ratio_total": total,
        "throughput_total_met": all(
            r is not None and r >= TARGET_THROUGHPUT_RATIO for r in total.values()
        ),
        "failed_reads": sum(m["failed_reads"] for s in sizes.values() for m in s["moves"].values()),
        "writes_lost": sum(m["writes_lost"] for s in sizes.values() for m in s["moves"].values()),
    }


def markdown(r: dict) -> list[str]:
    t = r["targets"]
    lines = [
        "## Tenant moves",
        "",
        f"A pool tenant of N chunks (platform database) moved live to a silo on a second "
        f"embedded PostgreSQL (`{r['server']}`) and back, while one client uploads small "
        f"documents (every {r['write_pause_s']} s) and one searches (vector, k=10, every "
        f"{r['read_pause_s']} s) through gunicorn. Baseline: a plain binary COPY of the "
        "tenant's rows of every data-plane table between the same two servers into scratch "
        "tables made LIKE the target's INCLUDING ALL (the generated full-text column and the "
        "indexes, HNSW included, that any copy into such tables must fill; no policy); "
        "`bare COPY` is the same into tables of bare columns (the wire and the disk alone). "
        "MOVE_DRAIN_SECONDS is 0 in the bench process (the drain is a fixed "
        "wait before the source is dropped, not work); no Celery worker runs (an upload is "
        "acknowledged at its 202). Write wait: from a client's first attempt until its upload "
        "was acknowledged, sleeping each 503's Retry-After (1 s) between tries.",
        "",
        "| N | move | total s | copy s | index s | fence ms | plain COPY s | bare COPY s | "
        "ratio copy | ratio total | ratio total (bare) | writes (retried) | "
        "max write wait ms | failed reads | empty reads | writes lost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | "
        "--- | --- |",
    ]
    for size, s in r["sizes"].items():
        for direction, m in s["moves"].items():
            base = s["baseline"][direction]
            bare = s.get("bare_baseline", {}).get(direction, {})
            state = "" if m["state"] == "done" else f" **{m['state']}**"
            lines.append(
                f"| {size} | {m['from']} -> {m['to']}{state} | {m['total_s']} | {m['copy_s']} | "
                f"{m['index_s']} | {m['fence_ms']} | {base['seconds']} ({base['mb']} MB) | "
                f"{bare.get('seconds')} | "
                f"{m['throughput_ratio_copy']} | {m['throughput_ratio_total']} | "
                f"{m.get('throughput_ratio_total_bare')} | "
                f"{m['writes']} ({m['writes_retried']}) | {m['max_write_wait_ms']} | "
                f"{m['failed_reads']} | {m['empty_reads']} | {m['writes_lost']} |"
            )
    met = {True: "met", False: "**not met**"}
    at = t["judged_at_chunks"]
    where = f"at {at} chunks" + (
        "" if at == t["stated_at_chunks"] else f" (stated for {t['stated_at_chunks']})"
    )
    lines += [
        "",
        f"- Write fence <= {t['fence_ms_max']} ms in both directions {where}: "
        f"{met[t['fence_met']]} ({', '.join(f'{d} {v} ms' for d, v in t['fence_ms'].items())}).",
        f"- Move throughput >= {t['throughput_ratio_min']} of the plain COPY {where}, copy "
        f"phase: {met[t['throughput_copy_met']]} "
        f"({', '.join(f'{d} {v}' for d, v in t['throughput_ratio_copy'].items())}); whole "
        f"move: {met[t['throughput_total_met']]} "
        f"({', '.join(f'{d} {v}' for d, v in t['throughput_ratio_total'].items())}).",
        f"- Failed reads: {t['failed_reads']} (must be 0); acknowledged writes lost: "
        f"{t['writes_lost']}.",
        "",
        "Phases (s): "
        + "; ".join(
            f"{size} {d}: " + ", ".join(f"{p} {sec}" for p, sec in m["phases_s"])
            for size, s in r["sizes"].items()
            for d, m in s["moves"].items()
        )
        + ".",
        "",
    ]
    return lines
