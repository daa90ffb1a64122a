"""`make bench`: performance targets, measured on a throwaway embedded database.

1. Ingestion throughput end to end (API service -> Celery worker -> ready), compared with
   `model.encode` alone on the very same chunks. Target: ratio >= 0.8.
2. Search server time without the query embedding, at 100k chunks. Target: p50 < 10 ms.
3. Answers (benchmarks/answer.py): decode tokens/s against raw llama-cpp-python (>= 0.9) and
   time to first token for k=5 (p50 < 1.5 s).

`make bench` runs all; `python benchmarks/run.py answer` (or ingestion, search) runs one.

Figures are printed and written to var/bench-results.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.db.models import Max  # noqa: E402
from django.utils import timezone  # noqa: E402

from rag.chunking import ChunkDraft, document_chunk  # noqa: E402
from rag.embedding import embed_texts, get_model  # noqa: E402
from rag.models import Document  # noqa: E402
from rag.parsing import document_parse  # noqa: E402
from rag.services.chunk_store import chunks_replace  # noqa: E402
from rag.services.documents import document_submit  # noqa: E402
from rag.services.search import chunk_search  # noqa: E402
from tenants.context import data_alias, tenant_context  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services.provisioning import tenant_create  # noqa: E402

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


def bench_ingestion() -> dict:
    from benchmarks.worker import running_worker

    texts = corpus(docs=24, paragraphs=20)
    drafts = [
        d.text
        for t in texts
        for d in document_chunk(blocks=document_parse(data=t.encode()).blocks, max_tokens=200)
    ]
    get_model()
    embed_texts(drafts[:64])  # warm
    started = time.perf_counter()
    embed_texts(drafts)
    encode_s = time.perf_counter() - started

    tenant = tenant_create(slug=f"bench-ingest-{int(time.time())}", mode="pool")
    with running_worker():
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
        # The clock stops when the last document turned ready, not when we noticed: polling
        # is slow on purpose so it does not steal CPU from the worker it measures.
        pipeline_s = (finished["updated_at__max"] - started).total_seconds()
    with tenant_context(tenant):
        stored = sum(Document.objects.filter(pk__in=ids).values_list("chunks_total", flat=True))
    if stored != len(drafts):
        raise RuntimeError(f"stored {stored} chunks, expected {len(drafts)}")
    return {
        "chunks": len(drafts),
        "encode_only_chunks_per_s": round(len(drafts) / encode_s, 1),
        "end_to_end_chunks_per_s": round(len(drafts) / pipeline_s, 1),
        "ratio": round(encode_s / pipeline_s, 3),
        "target_ratio": 0.8,
    }


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


def vocabulary(size: int = 6000, seed: int = 3, skip: int = 150) -> tuple[list[str], np.ndarray]:
    """Pseudo-words with Zipf frequencies, like the content words of real text.

    The `skip` most frequent ranks are left out: in real text those are stop words, which the
    english text-search configuration drops anyway; kept, every chunk would contain them.
    """
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = sorted({"".join(rng.choice(letters, size=rng.integers(4, 10))) for _ in range(size)})
    weights = 1.0 / np.arange(skip + 1, skip + len(words) + 1) ** 1.05
    return words, weights / weights.sum()


def load_search_corpus(tenant, total: int, rng) -> float:
    """Bulk-load `total` chunks. The HNSW index is dropped and rebuilt around the load (as the
    owner), because inserting 100k rows into a live HNSW index one by one takes many minutes."""
    words, p = vocabulary()
    started = time.perf_counter()
    with connections["owner"].cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
    for batch_start in range(0, total, 10_000):
        n = min(10_000, total - batch_start)
        vectors = rng.normal(size=(n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        drafts = [
            ChunkDraft(i, " ".join(rng.choice(words, size=60, p=p)), "Section", 60)
            for i in range(n)
        ]
        with tenant_context(tenant):
            doc = Document.objects.create(
                title=f"bulk {batch_start}",
                content_hash=f"{tenant.slug}-{batch_start}".ljust(64, "0")[:64],
                status="ready",
                chunks_total=n,
            )
            chunks_replace(
                alias=data_alias(),
                document_id=doc.id,
                chunks=drafts,
                vectors=vectors,
                metadata={"batch": batch_start},
            )
    with connections["owner"].cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "CREATE INDEX chunk_embedding_hnsw ON rag_chunk "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("ANALYZE rag_chunk")
        cursor.execute("ANALYZE rag_document")
    return time.perf_counter() - started


def bench_search(total: int = 100_000, queries: int = 60) -> dict:
    rng = np.random.default_rng(11)
    tenant = Tenant.objects.filter(slug="bench-search").first()
    load_s = 0.0
    if tenant is None:  # kept between runs when DATA_DIR is kept (see README)
        tenant = tenant_create(slug="bench-search", mode="pool")
        neighbour = tenant_create(slug="bench-neighbour", mode="pool")
        load_s = load_search_corpus(neighbour, 2000, rng) + load_search_corpus(tenant, total, rng)
    results = {"chunks": total, "load_s": round(load_s, 1)}
    words, p = vocabulary()
    questions = [" ".join(rng.choice(words, size=6, p=p)) for _ in range(queries)]
    # Warm the index and table pages (a restarted server starts with cold buffers) with
    # other questions than the measured ones.
    for q in [" ".join(rng.choice(words, size=6, p=p)) for _ in range(100)]:
        chunk_search(tenant=tenant, query=q, k=10, mode="hybrid")
    for mode in ("vector", "keyword", "hybrid"):
        for q in questions[:5]:
            chunk_search(tenant=tenant, query=q, k=10, mode=mode)
        times = sorted(
            chunk_search(tenant=tenant, query=q, k=10, mode=mode).timings["search_ms"]
            for q in questions
        )
        results[mode] = {
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        }
    results["target_p50_ms"] = 10
    return results


def main() -> int:
    call_command("migrate", verbosity=0)
    which = sys.argv[1:] or ["ingestion", "search", "answer"]
    report = {}
    if "ingestion" in which:
        report["ingestion"] = bench_ingestion()
        print("ingestion:", json.dumps(report["ingestion"]), flush=True)
    if "search" in which:
        report["search"] = bench_search()
        print("search:", json.dumps(report["search"]), flush=True)
    if "answer" in which:
        from benchmarks.answer import bench_answer

        report["answer"] = bench_answer()
        print("answer:", json.dumps(report["answer"]), flush=True)
    out = ROOT / "var" / "bench-results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
