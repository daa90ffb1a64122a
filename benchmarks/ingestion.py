"""Ingestion: chunks/s end to end through the real pipeline (upload service -> Celery worker ->
ready) for each embedding backend (rag/embedders: a fresh tenant per run, on that backend),
against torch's `model.encode` alone on the very same chunks (the bound) and against
langchain-postgres `add_texts` with the same model on the same server; and the time of each
stage (parse, chunk, embed, store) measured in-process on the same documents.

Each backend is compared with the torch fp32 pipeline of the same repetition (issue 18: the
new backends should ingest at least 2x as fast); how far their vectors drift from torch's is
the `embedding` section's business.
"""

from __future__ import annotations

import re
import statistics
import time

import numpy as np
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from rag.chunking import document_chunk
from rag.embedders import BACKENDS, TORCH
from rag.embedders.onnx_export import ensure_exported
from rag.embedding import default_backend, embed_texts, get_model
from rag.models import Document
from rag.parsing import document_parse
from rag.services.documents import document_submit
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.services.provisioning import tenant_create

from . import peers
from .common import repeated, spread
from .store import load_chunks

WORDS = [
    "river",
    "mountain",
    "harbour",
    "orchard",
    "library",
    "market",
    "bridge",
    "forest",
    "glacier",
    "volcano",
    "desert",
    "meadow",
    "canyon",
    "island",
    "valley",
    "summit",
    "lagoon",
    "prairie",
    "tundra",
    "delta",
    "estuary",
    "plateau",
    "reef",
    "marsh",
    "ridge",
    "cliff",
    "dune",
    "fjord",
    "geyser",
    "spring",
    "archive",
    "ledger",
    "invoice",
    "contract",
    "policy",
    "warranty",
    "shipment",
    "customer",
    "supplier",
    "payroll",
    "audit",
    "budget",
    "forecast",
    "revenue",
    "margin",
]


def corpus(docs: int, paragraphs: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for d in range(docs):
        parts = [f"# Report {d}"]
        for p in range(paragraphs):
            words = rng.choice(WORDS, size=110)
            parts.append(f"## Section {p}\n\n" + " ".join(words) + ".")
        out.append("\n\n".join(parts))
    return out


def _drafts(texts: list[str]) -> list:
    return [
        d
        for t in texts
        for d in document_chunk(
            blocks=document_parse(data=t.encode()).blocks,
            max_tokens=settings.CHUNK_MAX_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        )
    ]


def bench_ingestion(*, docs: int, paragraphs: int, repetitions: int, peer: bool = True) -> dict:
    from .worker import running_worker

    texts = corpus(docs=docs, paragraphs=paragraphs)
    chunks = [d.text for d in _drafts(texts)]
    get_model()
    embed_texts(chunks[:64], backend=TORCH)  # warm
    for backend in BACKENDS:
        if backend != TORCH:
            ensure_exported(backend)  # here, not in a timed task of the worker

    def encode_only() -> float:
        started = time.perf_counter()
        embed_texts(chunks, backend=TORCH)
        return len(chunks) / (time.perf_counter() - started)

    stages = _stages(texts, repetitions)

    # A tenant on each backend before the worker starts, so every worker process loads all of
    # them at start (rag/warmup.py loads the backends tenants are on) and none is loaded
    # lazily by whichever process happens to take a timed document.
    stamp = int(time.time())
    for backend in BACKENDS:
        _tenant_on(f"bench-ingest-{stamp}-{backend}", backend)
    # Alternated, and the backends' order rotated each repetition, so a slow spell of this
    # shared machine weighs on every side of the ratios.
    encodes: list[float] = []
    runs: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    with running_worker() as worker:
        _check_preloaded(worker.log())
        for rep in range(repetitions):
            encodes.append(encode_only())
            shift = rep % len(BACKENDS)
            for backend in BACKENDS[shift:] + BACKENDS[:shift]:
                runs[backend].append(_pipeline_once(texts, len(chunks), rep, backend))
    encode = spread(encodes)
    pipeline = spread(runs[default_backend()])

    result = {
        "documents": docs,
        "chunks": len(chunks),
        "default_backend": default_backend(),
        "encode_only_chunks_per_s": encode,
        "end_to_end_chunks_per_s": pipeline,
        "ratio_to_encode": round(pipeline["median"] / encode["median"], 3),
        "backends": {
            backend: {
                "chunks_per_s": spread(rates),
                "ratio_to_torch_pipeline": round(
                    statistics.median(
                        mine / torch for mine, torch in zip(rates, runs[TORCH], strict=True)
                    ),
                    3,
                ),
                "ratio_to_encode": round(statistics.median(rates) / encode["median"], 3),
            }
            for backend, rates in runs.items()
        },
        "stages_ms": stages,
        "stages_backend": default_backend(),
    }
    ok, reason = peers.available() if peer else (False, "disabled")
    if ok:
        store = peers.PeerStore(f"bench_peer_ingest_{int(time.time())}")
        try:
            store.add_texts(chunks[:32])  # warm the connection pool and the table
            peer_rate = repeated(lambda: len(chunks) / store.add_texts(chunks), repetitions)
        finally:
            store.close()
        result["langchain_postgres_chunks_per_s"] = peer_rate
        result["ratio_to_langchain_postgres"] = round(pipeline["median"] / peer_rate["median"], 3)
    else:
        result["peer_skipped"] = reason
    return result


def _tenant_on(slug: str, backend: str):
    """A fresh tenant whose documents `backend` embeds: set before its first document, as a
    tenant's backend is (the field is the control plane's, rag.services.reembed moves it)."""
    tenant = tenant_create(slug=slug, mode="pool")
    Tenant.objects.filter(pk=tenant.pk).update(embedding_backend=backend)
    tenant.refresh_from_db()
    return tenant


def _check_preloaded(log: str) -> None:
    """Every worker process says it loaded every backend (config/celery_app.py logs which):
    one loaded lazily during a timed run would be measured as that backend's ingestion."""
    processes = int(re.search(r"concurrency: (\d+)", log).group(1))
    loaded = re.findall(r"embedding backends loaded: (.*), \d+ threads each", log)
    complete = [names for names in loaded if set(BACKENDS) <= set(names.split(", "))]
    if len(complete) < processes:
        raise RuntimeError(f"worker processes did not all load {BACKENDS}: {loaded}")


def _stages(texts: list[str], repetitions: int) -> dict:
    """Milliseconds per stage over the whole corpus (median, min, max of the repetitions)."""
    tenant = tenant_create(slug=f"bench-stages-{int(time.time())}", mode="pool")
    timings: dict[str, list[float]] = {"parse": [], "chunk": [], "embed": [], "store": []}
    for rep in range(repetitions):
        t0 = time.perf_counter()
        parsed = [document_parse(data=t.encode()) for t in texts]
        t1 = time.perf_counter()
        drafts = [
            d
            for p in parsed
            for d in document_chunk(
                blocks=p.blocks,
                max_tokens=settings.CHUNK_MAX_TOKENS,
                overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            )
        ]
        t2 = time.perf_counter()
        vectors = embed_texts([d.text for d in drafts])
        t3 = time.perf_counter()
        load_chunks(tenant, [d.text for d in drafts], vectors, first_ordinal=rep * len(drafts))
        t4 = time.perf_counter()
        for name, (a, b) in zip(timings, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            timings[name].append((b - a) * 1000)
    return {
        name: {
            "median": round(float(np.median(v)), 1),
            "min": round(min(v), 1),
            "max": round(max(v), 1),
        }
        for name, v in timings.items()
    }


def _pipeline_once(texts: list[str], expected: int, rep: int, backend: str) -> float:
    """Chunks/s for one fresh tenant on `backend` (fresh, so no embedding cache helps) through
    the worker. The warm-up document runs the tenant's first task (its connection, its
    backend's first call in that process) outside the clock."""
    tenant = _tenant_on(f"bench-ingest-{int(time.time())}-{rep}-{backend}", backend)
    warm = document_submit(tenant=tenant, data=b"warm up the worker", filename="w.txt").document
    _wait_ready(tenant, [warm.id])
    started = timezone.now()
    ids = [
        document_submit(tenant=tenant, data=t.encode(), filename=f"r{i}.md").document.id
        for i, t in enumerate(texts)
    ]
    _wait_ready(tenant, ids)
    with tenant_context(tenant):
        finished = Document.objects.filter(pk__in=ids).aggregate(Max("updated_at"))
        stored = sum(Document.objects.filter(pk__in=ids).values_list("chunks_total", flat=True))
    if stored != expected:
        raise RuntimeError(f"stored {stored} chunks, expected {expected}")
    # The clock stops when the last document turned ready, not when we noticed: polling is
    # slow on purpose so it does not steal CPU from the worker it measures.
    return expected / (finished["updated_at__max"] - started).total_seconds()


def _wait_ready(tenant, ids) -> None:
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        with tenant_context(tenant):
            statuses = list(Document.objects.filter(pk__in=ids).values_list("status", flat=True))
        if all(s in ("ready", "failed") for s in statuses):
            if not all(s == "ready" for s in statuses):
                raise RuntimeError(f"ingestion failed: {statuses}")
            return
        time.sleep(1)
    raise TimeoutError
