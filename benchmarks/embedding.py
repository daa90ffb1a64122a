"""Embedding backends (rag/embedders) against the torch fp32 reference, in process, on the
retrieval-quality corpus (Django's documentation and the repository's docs, chunked as the
platform chunks them): how far each backend's vectors and rankings drift from torch's, what
that does to recall@5 and MRR@5, how fast it embeds chunks and how long one question takes.

Why beside the ingestion section: that one measures the pipeline's throughput per backend on
synthetic text, where no ranking can be judged; this one says whether a faster backend still
finds the same chunks (issue 18, item 1: top-10 neighbour agreement >= 0.95, recall@5 and
MRR@5 within 0.01 of torch, query p50 <= 0.5x torch). The corpus and the measures are
benchmarks/embedding_backends.py's (the study that chose the backends), reused, not copied.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from rag.embedders import BACKENDS, TORCH
from rag.embedding import embed_texts

from .common import spread, summary
from .embedding_backends import BATCH, TOP, build_corpus, quality, timing_sample

# Issue 18, item 1.
MIN_TOP10_AGREEMENT = 0.95
MAX_METRIC_DRIFT = 0.01
MAX_QUERY_RATIO = 0.5
WARM_QUESTIONS = 8
QUESTION_BLOCK = 10


def bench_embedding(*, pages: int, questions: int, chunks: int, passes: int) -> dict:
    """`pages` and `questions` choose the corpus (quality_corpus.select; every question ranks
    the chunks, those whose answer pages are in it also score recall); `chunks` the sample
    the throughput is timed on; `passes` how often each timing is repeated."""
    corpus = build_corpus(questions, pages)
    for backend in BACKENDS:  # loads, exports on first use, first runs' buffers
        embed_texts(corpus["questions"][:WARM_QUESTIONS], backend=backend)
        for question in corpus["questions"][:WARM_QUESTIONS]:
            embed_texts([question], backend=backend)
    qualities = _qualities(corpus)
    rates = _throughput(timing_sample(corpus["texts"], min(chunks, len(corpus["texts"]))), passes)
    latencies = _query_latencies(corpus["questions"], passes)
    torch_p50 = statistics.median(latencies[TORCH])
    rows = {}
    for backend in BACKENDS:
        q = qualities[backend]
        p50 = statistics.median(latencies[backend])
        row = {
            **q,
            "recall5_delta": round(q["recall5"] - qualities[TORCH]["recall5"], 3),
            "mrr5_delta": round(q["mrr5"] - qualities[TORCH]["mrr5"], 3),
            "chunks_per_s": spread(rates[backend]),
            "throughput_ratio_to_torch": round(
                statistics.median(m / t for m, t in zip(rates[backend], rates[TORCH], strict=True)),
                3,
            ),
            "query_ms": summary(latencies[backend]),
            "query_p50_ratio_to_torch": round(p50 / torch_p50, 3),
        }
        row["meets_quality_bar"] = bool(
            row["top10"] >= MIN_TOP10_AGREEMENT
            and abs(row["recall5_delta"]) <= MAX_METRIC_DRIFT
            and abs(row["mrr5_delta"]) <= MAX_METRIC_DRIFT
        )
        # None for torch: the reference is not held to a ratio to itself.
        row["meets_query_bar"] = (
            None if backend == TORCH else bool(row["query_p50_ratio_to_torch"] <= MAX_QUERY_RATIO)
        )
        rows[backend] = row
    return {
        "pages": corpus["pages"],
        "chunks": len(corpus["texts"]),
        "questions": len(corpus["questions"]),
        "answerable": qualities[TORCH]["answerable"],
        "timed_chunks": min(chunks, len(corpus["texts"])),
        "passes": passes,
        "top": TOP,
        "bars": {
            "top10_agreement_min": MIN_TOP10_AGREEMENT,
            "recall5_mrr5_max_drift": MAX_METRIC_DRIFT,
            "query_p50_ratio_max": MAX_QUERY_RATIO,
        },
        "backends": rows,
    }


def _qualities(corpus: dict) -> dict[str, dict]:
    """Each backend's chunk and question vectors scored against torch's (the reference):
    questions one at a time, as a search embeds them."""
    out, ref = {}, None
    for backend in (TORCH, *[b for b in BACKENDS if b != TORCH]):
        vectors = embed_texts(corpus["texts"], backend=backend)
        queries = np.concatenate([embed_texts([q], backend=backend) for q in corpus["questions"]])
        if ref is None:
            ranked = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")
            ref = {"vectors": vectors, "queries": queries, "ranked": ranked}
        out[backend] = {k: _round(v) for k, v in quality(corpus, vectors, queries, ref).items()}
    return out


def _throughput(sample: list[str], passes: int) -> dict[str, list[float]]:
    """Chunks/s of `embed_texts` on the sample (the platform's batches), each pass timing
    every backend once in an order rotated by one, so a slow spell weighs on all."""
    rates: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    for number in range(passes):
        for backend in _rotated(number):
            _settle(sample[:BATCH], backend)
            started = time.perf_counter()
            embed_texts(sample, backend=backend)
            rates[backend].append(len(sample) / (time.perf_counter() - started))
    return rates


def _query_latencies(questions: list[str], passes: int) -> dict[str, list[float]]:
    """Milliseconds to embed one question (as a search does): blocks of questions on every
    backend in turn, the order rotated per block, so the backends share the machine's moods.
    Not one question per backend in turn: the backends' thread pools (OpenMP's, ONNX
    Runtime's) spin for a while after a call, and in one process each one's spinning slowed
    the next backend's question 1.7-2.6x (torch 39 -> 102 ms), which no serving process on
    one backend pays."""
    times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    blocks = [questions[i : i + QUESTION_BLOCK] for i in range(0, len(questions), QUESTION_BLOCK)]
    for _ in range(passes):
        for number, block in enumerate(blocks):
            for backend in _rotated(number):
                _settle(block[:1], backend)
                for question in block:
                    started = time.perf_counter()
                    embed_texts([question], backend=backend)
                    times[backend].append((time.perf_counter() - started) * 1000)
    return times


def _rotated(number: int) -> tuple[str, ...]:
    shift = number % len(BACKENDS)
    return BACKENDS[shift:] + BACKENDS[:shift]


def _settle(texts: list[str], backend: str) -> None:
    """An untimed call on `backend` before timing it: the previous backend's spinning
    threads go idle meanwhile, and this one's are awake."""
    embed_texts(texts, backend=backend)


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def markdown(r: dict) -> list[str]:
    bars = r["bars"]
    lines = [
        "## Embedding backends",
        "",
        f"In process, on the retrieval-quality corpus: {r['pages']} pages ({r['chunks']} "
        f"chunks), {r['questions']} questions ({r['answerable']} with their answer pages in it "
        f"score recall@5 and MRR@5). Against torch fp32: top-{r['top']} neighbour agreement "
        "(mean, min over questions), cosine to torch's chunk vectors (mean, min); throughput of "
        f"`embed_texts` on {r['timed_chunks']} chunks and one-question latency, {r['passes']} "
        f"passes, backends interleaved (questions in blocks of {QUESTION_BLOCK}). Bars: "
        f"agreement >= {bars['top10_agreement_min']}, recall@5 and MRR@5 within "
        f"{bars['recall5_mrr5_max_drift']} of torch, query p50 <= "
        f"{bars['query_p50_ratio_max']}x torch.",
        "",
        "| backend | top-10 agreement | cosine | recall@5 | MRR@5 | chunks/s | x torch "
        "| query p50 / p95 ms | x torch | quality bar | query bar |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, b in r["backends"].items():
        q = b["query_ms"]
        lines.append(
            f"| {name} | {b['top10']:.3f} (min {b['top10_min']:.1f}) | {b['cos_mean']:.4f} "
            f"(min {b['cos_min']:.4f}) | {b['recall5']} ({b['recall5_delta']:+.3f}) | "
            f"{b['mrr5']} ({b['mrr5_delta']:+.3f}) | {b['chunks_per_s']['median']} | "
            f"{b['throughput_ratio_to_torch']} | {q['p50']} / {q['p95']} | "
            f"{b['query_p50_ratio_to_torch']} | {_yes(b['meets_quality_bar'])} | "
            f"{_yes(b['meets_query_bar'])} |"
        )
    return [*lines, ""]


def _yes(flag: bool | None) -> str:
    if flag is None:
        return "-"
    return "yes" if flag else "**no**"
