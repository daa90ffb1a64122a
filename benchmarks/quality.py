"""Retrieval quality on a real documentation set: Django's documentation (benchmarks/
quality_corpus.py) uploaded page by page through `POST /api/v1/documents`, ingested by a real
Celery worker, then every question of benchmarks/quality_questions.json asked through
`POST /api/v1/search` in vector, keyword and hybrid mode (k=20 documents, `group_by:
"document"`: the pages a reader of a manual is shown).

Scored over distinct documents (quality_metrics.py): recall@5, MRR@5, nDCG@10, next to the
naive baselines computed on the same pages in this process (quality_baseline.py). Besides the
figures it keeps what a ranking fix needs to look at: each question's first documents per
mode, and how much of the first five hits are short (navigation-like) chunks or release notes.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Max, Sum
from django.test import Client
from django.utils import timezone

from rag.models import Document
from tenants.context import tenant_context
from tenants.services.apikeys import apikey_create
from tenants.services.provisioning import tenant_create
from tenants.services.quotas import quota_set

from .quality_baseline import CHUNK_WORDS, baseline_rankings
from .quality_corpus import (
    DOCS_DIR,
    DOCS_PACKAGE,
    corpus_pages,
    load_questions,
    select,
    subset_select,
)
from .quality_metrics import distinct, scores

MODES = ("vector", "keyword", "hybrid")
K = 20
SHORT_HIT_WORDS = 40
UNLIMITED = 1_000_000


def bench_quality(*, pages: int = 0, questions: int = 0, subset: Path | None = None) -> dict:
    """The section at `pages` and `questions` (0: all; see quality_corpus.select), or on the
    pages and questions a `subset` file names (benchmarks/quality_floor.json)."""
    from .worker import running_worker

    if subset is not None:
        chosen, asked = subset_select(corpus_pages(), load_questions(), subset)
    else:
        chosen, asked = select(
            corpus_pages(),
            load_questions(),
            page_count=pages,
            question_count=questions,
            root=DOCS_DIR,
        )
    data = {path: (DOCS_DIR / path).read_bytes() for path in chosen}
    relevant = [set(q["pages"]) for q in asked]
    tenant, client = _tenant()
    with running_worker():
        ingested = _ingest(client, tenant, data)
    owners = ingested.pop("owners")
    rankings, hits, latencies = {}, {}, {}
    for mode in MODES:
        rankings[mode], hits[mode], latencies[mode] = _search(
            client, [q["q"] for q in asked], mode, owners
        )
    baseline = baseline_rankings(data, [q["q"] for q in asked])

    result = {
        "corpus": DOCS_PACKAGE,
        "pages": len(chosen),
        "questions": len(asked),
        **ingested,
        "baseline_chunks": baseline["chunks"],
        "baseline_embed_s": baseline["embed_seconds"],
        "baseline_chunk_words": CHUNK_WORDS,
        "modes": {mode: scores(rankings[mode], relevant) for mode in MODES},
        # In this process through the whole Django stack (the search section measures the
        # HTTP server): what ranking costs on a real corpus, per mode.
        "latency": {mode: _latency(latencies[mode]) for mode in MODES},
        "baselines": {
            "naive_vector": scores(baseline["vector"], relevant),
            "naive_vector_fts_rrf": scores(baseline["rrf"], relevant),
        },
        "diagnostics": {mode: _diagnose(hits[mode], relevant) for mode in MODES},
        "per_question": [
            {
                "q": q["q"],
                "pages": q["pages"],
                **{mode: distinct(rankings[mode][i])[:5] for mode in MODES},
                "naive_vector": distinct(baseline["vector"][i])[:5],
            }
            for i, q in enumerate(asked)
        ],
    }
    return result


def _tenant():
    tenant = tenant_create(slug=f"bench-quality-{int(time.time())}", mode="pool")
    quota_set(
        tenant=tenant,
        search_per_hour=UNLIMITED,
        ingest_per_hour=UNLIMITED,
        embeddings_per_hour=UNLIMITED,
        max_documents=UNLIMITED,
        max_storage_bytes=10 * 1024**3,
    )
    _, key = apikey_create(tenant=tenant, scopes=["ingest", "query"])
    return tenant, Client(SERVER_NAME="localhost", HTTP_AUTHORIZATION=f"Bearer {key}")


def _ingest(client: Client, tenant, data: dict[str, bytes]) -> dict:
    """Every page as a multipart upload (its path as `external_id`), then wait until ready."""
    started = timezone.now()
    owners: dict[str, str] = {}
    for path, body in data.items():
        upload = SimpleUploadedFile(path.replace("/", "_"), body, content_type="text/html")
        response = client.post("/api/v1/documents", {"file": upload, "external_id": path})
        if response.status_code not in (200, 202):
            raise RuntimeError(f"upload of {path}: {response.status_code} {response.json()}")
        # A duplicate answers the first upload's document: the hit then stands for both pages.
        owners.setdefault(response.json()["id"], path)
    failed = _wait_ready(tenant, list(owners))
    with tenant_context(tenant):
        done = Document.objects.filter(pk__in=list(owners), status="ready")
        totals = done.aggregate(last=Max("updated_at"), chunks=Sum("chunks_total"))
    return {
        "owners": owners,
        "documents": len(owners),
        "failed": failed,
        "chunks": totals["chunks"] or 0,
        # Until the last document turned ready, not until the poll noticed.
        "ingestion_s": round((totals["last"] - started).total_seconds(), 1),
    }


def _wait_ready(tenant, ids: list[str], timeout: float = 3600) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with tenant_context(tenant):
            rows = list(Document.objects.filter(pk__in=ids).values_list("external_id", "status"))
        if all(status in ("ready", "failed") for _, status in rows):
            return sorted(external for external, status in rows if status == "failed")
        time.sleep(2)  # slow on purpose: the poll must not steal the worker's cores
    raise TimeoutError(f"the quality corpus was not ingested within {timeout} s")


def _search(client: Client, questions: list[str], mode: str, owners: dict[str, str]):
    """Per question, the pages of the documents found (`group_by: "document"`, k=20) in rank
    order, the first five documents' best chunks (trimmed), and each call's milliseconds."""
    rankings, hits, latencies = [], [], []
    for question in questions:
        started = time.perf_counter()
        response = client.post(
            "/api/v1/search",
            {"query": question, "k": K, "mode": mode, "group_by": "document"},
            content_type="application/json",
        )
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"search {mode} {question!r}: {response.status_code}")
        documents = response.json()["documents"]
        rankings.append([owners.get(d["document_id"], d["document_id"]) for d in documents])
        hits.append(
            [
                {"page": owners.get(d["document_id"]), "words": len(d["chunks"][0]["text"].split())}
                for d in documents[:5]
            ]
        )
    return rankings, hits, latencies


def _latency(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


def _diagnose(hits: list[list[dict]], relevant: list[set[str]]) -> dict:
    """Where the first five hits go: short chunks, release notes, pages that do not answer."""
    flat = [(h, answers) for top, answers in zip(hits, relevant, strict=True) for h in top]
    n = len(flat) or 1
    short = [h for h, _ in flat if h["words"] < SHORT_HIT_WORDS]
    return {
        "top5_hits": len(flat),
        "short_hit_share": round(len(short) / n, 3),
        "short_hit_relevant_share": round(
            sum(1 for h, a in flat if h["words"] < SHORT_HIT_WORDS and h["page"] in a)
            / (len(short) or 1),
            3,
        ),
        "release_notes_share": round(
            sum(1 for h, _ in flat if (h["page"] or "").startswith("releases/")) / n, 3
        ),
        "relevant_hit_share": round(sum(1 for h, a in flat if h["page"] in a) / n, 3),
    }
