"""Helpers shared by the benchmark sections: statistics, synthetic corpora, bulk loading.

Nothing here imports Django models at module level, so `benchmarks/run.py` can choose the
settings first and the smoke test can import it under pytest-django.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

DIM = 384


def summary(values: list[float], digits: int = 2) -> dict:
    """Median, p95, min and max of a sample (milliseconds or whatever was measured)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    p95 = ordered[min(len(ordered) - 1, max(0, round(len(ordered) * 0.95) - 1))]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), digits),
        "p95": round(p95, digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
    }


def repeated(fn, repetitions: int) -> dict:
    """Run `fn` (returning a number) `repetitions` times: median with min and max."""
    return spread([fn() for _ in range(repetitions)])


def spread(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started

    @property
    def ms(self) -> float:
        return self.seconds * 1000


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


@dataclass
class SyntheticCorpus:
    """Unit vectors with cluster structure (as embeddings of real text have) and chunk texts
    drawn from a Zipf vocabulary. Generated, so that no embedding time is measured."""

    texts: list[str]
    vectors: np.ndarray
    centres: np.ndarray


def synthetic_corpus(count: int, *, seed: int, clusters: int = 256) -> SyntheticCorpus:
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(clusters, DIM)).astype(np.float32))
    words, p = vocabulary()
    vectors = np.empty((count, DIM), dtype=np.float32)
    for start in range(0, count, 50_000):
        n = min(50_000, count - start)
        which = rng.integers(0, clusters, size=n)
        noise = rng.normal(scale=0.06, size=(n, DIM)).astype(np.float32)
        vectors[start : start + n] = _unit(centres[which] + noise)
    texts = [" ".join(rng.choice(words, size=40, p=p)) for _ in range(count)]
    return SyntheticCorpus(texts=texts, vectors=vectors, centres=centres)


def query_vectors(corpus: SyntheticCorpus, count: int, seed: int) -> np.ndarray:
    """Queries near the data (a random cluster centre plus noise), as real questions are."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(corpus.centres), size=count)
    noise = rng.normal(scale=0.06, size=(count, DIM)).astype(np.float32)
    return _unit(corpus.centres[which] + noise)


def query_texts(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words, p = vocabulary()
    return [" ".join(rng.choice(words, size=5, p=p)) for _ in range(count)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def vector_literal(vector) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
