"""The generation models: GGUF files run by llama-cpp-python in this process.

Why in-process: no second server to deploy, and a 135M model answers in well under a second
per sentence on a laptop CPU. Each registered model (registry.py) is loaded lazily, at most
once per process, and kept warm; they share the process's one gate (gate.py): the CPU is one,
and llama.cpp contexts are not thread-safe.

Loaded models are bounded by LLM_MEMORY_BUDGET_MB, counted as the sizes of their GGUF files
(the weights; each context's KV cache comes on top). A load that would pass it is refused with
ModelUnavailable (the API answers 503 `model_unavailable`) and nothing is loaded: a process
that swapped or was OOM-killed would fail every tenant, not only the one asking.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from .registry import GenerationModelMissing, ModelSpec, UnknownModel, model_spec

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "GenerationModelMissing",
    "LoadedModel",
    "ModelUnavailable",
    "UnknownModel",
    "get_model",
    "gguf_path",
    "is_loaded",
    "model_name",
]

MB = 1024 * 1024


class ModelUnavailable(RuntimeError):
    """Loading this model would pass LLM_MEMORY_BUDGET_MB; nothing was loaded."""


def gguf_path(name: str | None = None) -> Path:
    """The GGUF file of model `name` (None: the default). A chunked package is assembled."""
    return model_spec(name).path()


def model_name(name: str | None = None) -> str:
    """The registered name of model `name` (None: the default), without loading it."""
    return model_spec(name).name


@dataclass
class LoadedModel:
    """The llama.cpp model and what the prompt builder needs to know about it."""

    llm: Llama
    name: str
    n_ctx: int
    chat_template: str
    bos_token: str
    eos_token: str

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Tokens of `text` without BOS. `special=False` for untrusted text: a document that
        contains `<|im_start|>` gets those characters, not the control token."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def is_end_of_generation(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))


_lock = threading.Lock()  # one load at a time: the budget check and the load are one step
_models: dict[str, LoadedModel] = {}
_sizes: dict[str, int] = {}  # bytes of each loaded model's GGUF, against the budget


def is_loaded(name: str | None = None) -> bool:
    return model_spec(name).name in _models


def get_model(name: str | None = None) -> LoadedModel:
    """Model `name` (None: the platform default), loaded on first use. Raises UnknownModel,
    ModelUnavailable (over the memory budget) or GenerationModelMissing."""
    spec = model_spec(name)
    model = _models.get(spec.name)
    if model is None:
        with _lock:
            model = _models.get(spec.name)
            if model is None:
                size = _within_budget(spec)
                model = _models[spec.name] = _load(spec)
                _sizes[spec.name] = size
    return model


def _within_budget(spec: ModelSpec) -> int:
    size = spec.size_bytes()
    budget = settings.LLM_MEMORY_BUDGET_MB * MB
    used = sum(_sizes.values())
    if budget and used + size > budget:
        raise ModelUnavailable(
            f"Model {spec.name!r} ({size / MB:.0f} MB) does not fit in this process's model "
            f"memory budget ({used / MB:.0f} of {budget / MB:.0f} MB used by "
            f"{', '.join(_models) or 'no model'})."
        )
    return size


def _load(spec: ModelSpec) -> LoadedModel:
    import llama_cpp
    from llama_cpp import Llama

    path = spec.path()
    kwargs: dict[str, Any] = {
        "n_ctx": settings.LLM_CONTEXT_SIZE,
        "n_threads": settings.LLM_THREADS,
        "n_threads_batch": settings.LLM_THREADS,
        "n_batch": settings.LLM_BATCH_SIZE,
        "n_ubatch": settings.LLM_BATCH_SIZE,
        "verbose": False,
    }
    original = llama_cpp.llama_cpp.llama_model_default_params
    if not settings.LLM_EXTRA_BUFFER_TYPES:
        # llama.cpp's extra CPU buffer types (AMX tiles, repacked weights) crash with SIGSEGV
        # on CPUs that advertise AMX inside VMs that do not enable it (seen on Firecracker).
        # Llama() has no argument for it, so its default model parameters are adjusted for
        # the length of this one load (under the module lock).
        def without_extra_buffers():
            params = original()
            params.use_extra_bufts = False
            return params

        llama_cpp.llama_cpp.llama_model_default_params = without_extra_buffers
    try:
        llm = Llama(str(path), **kwargs)
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = original
    # Free the context before interpreter teardown: llama-cpp-python's __del__ otherwise
    # runs after its module globals are gone and prints a TypeError at every exit.
    atexit.register(llm.close)
    # The file's own template first; then the registry's for a file known to carry none
    # (the packaged Gemma), then LLM_CHAT_TEMPLATE for any other such file.
    template = (
        llm.metadata.get("tokenizer.chat_template", "")
        or spec.chat_template
        or settings.LLM_CHAT_TEMPLATE
    )
    if not template:
        llm.close()
        raise GenerationModelMissing(f"{path} has no chat template; set LLM_CHAT_TEMPLATE")
    return LoadedModel(
        llm=llm,
        name=spec.name,
        n_ctx=llm.n_ctx(),
        chat_template=template,
        bos_token=_token_text(llm, llm.token_bos()),
        eos_token=_token_text(llm, llm.token_eos()),
    )


def _token_text(llm: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")
