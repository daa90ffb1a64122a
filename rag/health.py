"""Readiness of the data plane's two models, registered with /readyz by rag's AppConfig.

"Loadable" means: already loaded in this process, or its files are where the settings say.
Probes come every few seconds, so a check never loads a model (hundreds of MB, seconds of
CPU); observability.health caches these results for READINESS_CACHE_SECONDS.
"""

from __future__ import annotations

from observability.health import NotReady

from . import embedding, warmup
from .generation import model as generation
from .tokenizer import EmbeddingModelMissing, embedding_model_path

EMBEDDING_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def check_embedding_model() -> str:
    if embedding.is_loaded():
        return "loaded"
    try:
        path = embedding_model_path()
    except EmbeddingModelMissing as exc:
        raise NotReady(str(exc)) from exc
    if not any((path / name).is_file() for name in EMBEDDING_WEIGHTS):
        raise NotReady(f"{path} has no model weights")
    return "loadable"


def check_generator() -> str:
    """The platform's default model only: the others load on their first request (and are
    refused then if they are missing or over the memory budget), so one broken optional model
    does not take every answer out of service."""
    try:
        if generation.is_loaded():
            return "loaded"
        path = generation.model_spec().probe_file()
    except generation.GenerationModelMissing as exc:
        raise NotReady(str(exc)) from exc
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise NotReady(f"{path} is not a GGUF file")
    return "loadable"


def check_warm() -> str:
    """Not ready while this process is still loading the models it warms at start
    (rag/warmup.py): a request routed to it would wait for the load. Never cached."""
    state, detail = warmup.state()
    if state == warmup.WARMING:
        raise NotReady(f"models loading: {detail}")
    if state == warmup.FAILED:
        raise NotReady(f"warming the models failed: {detail}")
    return "warm" if state == warmup.WARM else "loads on first use"
