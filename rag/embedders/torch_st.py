"""The reference backend: the packaged all-MiniLM-L6-v2 through sentence-transformers on
torch, fp32. Importing this module is cheap; constructing an embedder imports torch."""

from __future__ import annotations

import os

import numpy as np
from django.conf import settings

from ..memory_tuning import malloc_keep_freed_memory
from ..tokenizer import embedding_model_path


class TorchEmbedder:
    """sentence-transformers' encode sorts one call's texts by length itself."""

    def __init__(self, threads: int | None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)  # on the compute thread: OpenMP counts per thread
        # Before the model's first allocation, so its buffers start in the heap.
        malloc_keep_freed_memory(settings.EMBEDDING_MALLOC_KEEP_MB)
        self.model = SentenceTransformer(str(embedding_model_path()), device="cpu")

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
