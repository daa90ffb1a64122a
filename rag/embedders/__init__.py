"""The embedding backends: which code turns text into the platform's 384-dimension vectors.

Why several: sentence-transformers on torch (`torch`) is the reference, but torch costs the
web process 5 s and 300 MB to load and is not the fastest CPU path. ONNX Runtime runs the
same network exported locally from the packaged model (`onnx`: fp32 with fused attention,
vectors equal to torch's to 1e-5) or quantized to int8 with the layers that quantize worst
kept fp32 (`onnx-int8`). Which one a process uses by default is EMBEDDING_BACKEND; which one a
tenant's vectors came from is recorded (Tenant.embedding_backend, Document.embedding_backend),
because vectors of two backends are not comparable exactly and must never be mixed silently:
a tenant is queried with the backend its chunks were embedded with, until `manage.py reembed`
moves it (rag/services/reembed.py).

An embedder is loaded lazily, once per process and backend; nothing here imports torch or
onnxruntime at import time.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

TORCH, ONNX, ONNX_INT8 = "torch", "onnx", "onnx-int8"
BACKENDS = (TORCH, ONNX, ONNX_INT8)
DIMENSIONS = 384


class UnknownBackend(ValueError):
    """An EMBEDDING_BACKEND or tenant backend that is not one of BACKENDS."""


class Embedder(Protocol):
    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given."""


_lock = threading.Lock()
_loaded: dict[str, Embedder] = {}
_threads: int | None = None


def check(name: str) -> str:
    if name not in BACKENDS:
        raise UnknownBackend(f"unknown embedding backend {name!r}; choose one of {BACKENDS}")
    return name


def set_threads(threads: int) -> None:
    """Threads each backend loaded later computes with (a worker process's share of the
    cores); unset, each library's own default (every core)."""
    global _threads
    _threads = threads


def is_loaded(name: str) -> bool:
    return name in _loaded


def loaded() -> list[str]:
    return sorted(_loaded)


def get(name: str) -> Embedder:
    check(name)
    embedder = _loaded.get(name)
    if embedder is None:
        with _lock:
            embedder = _loaded.get(name)
            if embedder is None:
                embedder = _load(name)
                _loaded[name] = embedder
    return embedder


def _load(name: str) -> Embedder:
    if name == TORCH:
        from .torch_st import TorchEmbedder

        return TorchEmbedder(threads=_threads)
    from .onnx_runtime import OnnxEmbedder

    return OnnxEmbedder(name, threads=_threads)
