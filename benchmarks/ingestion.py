"""Ingestion: chunks/s end to end through the real pipeline (upload service -> Celery worker ->
ready), against `model.encode` alone on the very same chunks (the bound) and against
langchain-postgres `add_texts` with the same model on the same server; and the time of each
stage (parse, chunk, embed, store) measured in-process on the same documents.
"""

from __future__ import annotations

import time

import numpy as np
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from rag.chunking import document_chunk
from rag.embedding import embed_texts, get_model
from rag.models import Document
from rag.parsing import document_parse
from rag.services.documents import document_submit
from tenants.context import tenant_context
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
    embed_texts(chunks[:64])  # warm

    def encode_only() -> float:
        started = time.perf_counter()
        embed_texts(chunks)
        return len(chunks) / (time.perf_counter() - started)

    stages = _stages(texts, repetitions)

    # Alternated, so a slow spell of this shared machine weighs on both sides of the ratio.
    encodes, runs = [], []
    with running_worker():
        for rep in range(repetitions):
            encodes.append(encode_only())
            runs.append(_pipeline_once(texts, len(chunks), rep))
    encode, pipeline = spread(encodes), spread(runs)

    result = {
        "documents": docs,
        "chunks": len(chunks),
        "encode_only_chunks_per_s": encode,
        "end_to_end_chunks_per_s": pipeline,
        "ratio_to_encode": round(pipeline["median"] / encode["median"], 3),
        "stages_ms": stages,
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


def _pipeline_once(texts: list[str], expected: int, rep: int) -> float:
    """Chunks/s for one fresh tenant (so no embedding cache helps) through the worker."""
    tenant = tenant_create(slug=f"bench-ingest-{int(time.time())}-{rep}", mode="pool")
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
