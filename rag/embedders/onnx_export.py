"""The ONNX models of the `onnx` and `onnx-int8` backends, exported locally from the packaged
all-MiniLM-L6-v2 (never fetched from a hub) the first time a process needs them, or ahead of
that by `manage.py embedding_export` (which `make run` and the test suite run at start).

Recipe, kept because it measured best on quality and speed together on a 2-core AMD EPYC with
AVX2 and no VNNI (benchmarks/embedding_backends.py, 384 chunks of the documentation corpus, one
process of 2 threads; with one thread per process, as the worker runs, every backend embeds at
the same 9.6 chunks/s: the speed-ups below come from threading, not from the arithmetic):

- `onnx`: BertModel's last hidden state exported with torch's TorchScript exporter (eager
  attention, opset 17), then onnxruntime's BERT fusions (Attention, SkipLayerNormalization,
  BiasGelu; optimum's O2). Vectors match torch fp32 to 1e-5 (top-10 agreement 1.000); 1.24x
  torch's throughput in document order, 1.67x batched by length, query latency 0.32x.
- `onnx-int8`: dynamic int8, per-channel weights, on the Linear MatMuls, except the
  INT8_KEEP_FP32 that damage the vectors most when quantized alone (`sensitivity`, measured
  once for the packaged model into int8_sensitive.json; a configured model is scanned at
  export, which takes minutes).
  Quantizing all of them (what optimum's avx2 preset and a plain quantize_dynamic do) gave
  top-10 agreement 0.84-0.92; keeping 18 of 36 in fp32 gave 0.975 at 1.83x batched by length.
  Static QDQ quantization with calibration on real chunks was slower than dynamic here (the
  extra Quantize/Dequantize nodes cost more than int8 saves without VNNI) and OpenVINO's int8
  was not better; neither is built.

Exports are keyed by a fingerprint of the model files and the library versions, written
atomically (temporary name, then rename) under a file lock, so concurrent processes build a
model once and never read half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from django.conf import settings

from ..tokenizer import MODEL_PATH_VARIABLE, embedding_model_path

logger = logging.getLogger(__name__)

MAX_TOKENS = 256  # the model's window (sentence_bert_config.json)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INT8_KEEP_FP32 = 18
# Bump when the recipe changes: older exports then stop matching and are rebuilt.
EXPORT_FORMAT = 1
FILES = {"onnx": "fp32-fused.onnx", "onnx-int8": "int8-dynamic.onnx"}

Progress = Callable[[str], None]


class ExportFailed(RuntimeError):
    """The model could not be exported (torch, onnx or onnxruntime missing or refusing)."""


def fingerprint() -> str:
    """Changes with the model's weights and configs and with the exporting libraries."""
    digest = hashlib.sha256(f"format {EXPORT_FORMAT}".encode())
    folder = embedding_model_path()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".safetensors", ".bin", ".txt"}:
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}:{stat.st_size}".encode())
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            digest.update(f"{package}=none".encode())
    return digest.hexdigest()[:16]


def export_dir() -> Path:
    return Path(settings.EMBEDDING_EXPORT_DIR) / fingerprint()


def model_file(backend: str) -> Path:
    return export_dir() / FILES[backend]


def ensure_exported(backend: str, progress: Progress | None = None) -> Path:
    """The backend's model file, exporting it first if this machine has none yet."""
    target = model_file(backend)
    if target.is_file():
        return target
    say = progress or (lambda line: logger.info("embedding export: %s", line))
    with _locked(target.parent):
        if target.is_file():  # another process built it while this one waited
            return target
        started = time.monotonic()
        try:
            _build(backend, target, say)
        except ImportError as exc:
            raise ExportFailed(
                f"exporting the {backend} embedding model needs {exc.name}; install the "
                "project's dependencies"
            ) from exc
        say(f"{backend} model ready in {time.monotonic() - started:.0f} s: {target}")
    return target


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(backend: str, target: Path, say: Progress) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        work_dir = Path(work)
        raw = work_dir / "raw.onnx"
        say("exporting all-MiniLM-L6-v2 from its package to ONNX (torch)")
        export_fp32(raw)
        built = work_dir / "built.onnx"
        if backend == "onnx":
            say("fusing attention and layer norms (onnxruntime's BERT optimizer)")
            fuse(raw, built)
        else:
            pre = work_dir / "pre.onnx"
            preprocess(raw, pre)
            ranked = _packaged_ranking(pre) or sensitivity(pre, work_dir, say)
            say(f"quantizing to int8, keeping the {INT8_KEEP_FP32} most sensitive layers fp32")
            quantize_dynamic_int8(pre, built, exclude=ranked[:INT8_KEEP_FP32])
            (target.parent / f"{target.stem}.scan.json").write_text(json.dumps(ranked, indent=1))
        os.replace(built, target)
    shutil.rmtree(target.parent / "__pycache__", ignore_errors=True)


def export_fp32(path: Path) -> None:
    """BertModel's last hidden state to ONNX with torch's TorchScript exporter (pooling stays in
    numpy). Eager attention, so the graph has the plain MatMul/Softmax pattern onnxruntime's
    BERT fusions recognise; sentence-transformers' own backend="onnx" export refuses the
    packaged folder ("Unrecognized model"), and optimum pins older transformers."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(embedding_model_path()), attn_implementation="eager", local_files_only=True
    ).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with torch.no_grad():
        torch.onnx.export(
            LastHiddenState(model),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(path),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def fuse(source: Path, target: Path, *, fast_gelu: bool = False) -> None:
    """onnxruntime's BERT optimizer (optimum's O2; `fast_gelu`, O3, adds the tanh GELU
    approximation, which moved vectors for no measurable speed here)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_gelu_approximation = fast_gelu
    model = optimize_model(
        str(source), model_type="bert", num_heads=12, hidden_size=384, optimization_options=options
    )
    model.save_model_to_file(str(target))


def preprocess(source: Path, target: Path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Symbolic shape inference gives up on transformers' mask arithmetic; ONNX's own shape
    # inference and ORT's basic graph optimisation are what quantization needs.
    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)


def weight_matmuls(path: Path) -> list[str]:
    """MatMul nodes with a constant weight (the 36 Linear layers); the two attention MatMuls
    per layer multiply activations and stay fp32."""
    import onnx

    model = onnx.load(str(path))
    constants = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in constants]


def quantize_dynamic_int8(
    source: Path,
    target: Path,
    *,
    nodes: list[str] | None = None,
    exclude: list[str] = (),
    reduce_range: bool = False,
) -> None:
    """`reduce_range` (7-bit weights, for CPUs whose int8 products saturate) is one of the
    variants benchmarks/embedding_backends.py compared; the platform's model uses 8 bits."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=nodes or [],
        nodes_to_exclude=list(exclude),
        extra_options={"MatMulConstBOnly": True},
    )


def _packaged_ranking(pre: Path) -> list[str] | None:
    """The packaged model's layers, worst first, as `sensitivity` measured them once
    (int8_sensitive.json): the ranking is the model's, not the machine's, and the scan takes
    minutes. None for a configured model (EMBEDDING_MODEL_PATH) or a graph that names its
    nodes otherwise (another exporter): those are scanned here."""
    if os.environ.get(MODEL_PATH_VARIABLE):
        return None
    ranked = json.loads((Path(__file__).parent / "int8_sensitive.json").read_text())["worst_first"]
    return ranked if set(ranked) == set(weight_matmuls(pre)) else None


def sensitivity(pre: Path, work: Path, say: Progress) -> list[str]:
    """Weight MatMuls, worst first, by how far quantizing each one alone moves the vectors of
    a few real texts (1 - mean cosine to fp32)."""
    import onnxruntime as ort

    texts = scan_texts()

    def vectors(path: Path) -> np.ndarray:
        from .onnx_runtime import pooled

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return pooled(session, texts)

    reference = vectors(pre)
    scan = work / "scan.onnx"
    nodes = weight_matmuls(pre)
    damage = {}
    for number, node in enumerate(nodes, 1):
        say(f"measuring which layers quantize worst: {number}/{len(nodes)}")
        quantize_dynamic_int8(pre, scan, nodes=[node])
        damage[node] = float(1 - np.mean(np.sum(vectors(scan) * reference, axis=1)))
    return sorted(damage, key=lambda node: -damage[node])


def scan_texts(count: int = 32) -> list[str]:
    """Paragraphs of the project's own documentation and the questions of its evaluation set:
    real prose and real questions, shipped with the code."""
    root = Path(settings.BASE_DIR)
    paragraphs = []
    for path in [*sorted((root / "docs").glob("*.md")), root / "README.md"]:
        if path.is_file():
            paragraphs += [p for p in path.read_text().split("\n\n") if len(p.split()) >= 30]
    questions = []
    for path in sorted((root / "rag" / "evalsets").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    step = max(1, len(paragraphs) // count)
    return paragraphs[::step][:count] + questions[:: max(1, len(questions) // 16)][:16]
