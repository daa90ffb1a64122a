"""ONNX Runtime backends (`onnx`, `onnx-int8`): the exported network, the model's own
tokenizer.json through `tokenizers`, and sentence-transformers' mean pooling and
normalisation in numpy. Neither torch nor transformers is imported: a web process on this
backend loads in a third of a second and about 190 MB, against 5 s and 500 MB with torch.

Texts are batched by token length (a batch is padded to its longest text, and attention costs
the square of that), so a document whose last chunk is short does not pad it to 200 pieces.
"""

from __future__ import annotations

import numpy as np

from ..tokenizer import TOKENIZER_FILE, embedding_model_path
from . import DIMENSIONS
from .onnx_export import MAX_TOKENS, ensure_exported


class OnnxEmbedder:
    def __init__(self, backend: str, threads: int | None):
        import onnxruntime as ort

        path = ensure_exported(backend)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = window_tokenizer()

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return pooled(self.session, texts, batch_size=batch_size, tokenizer=self.tokenizer)


def window_tokenizer():
    """The model's tokenizer.json, cut to the model's window, unpadded (batches pad)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(embedding_model_path() / TOKENIZER_FILE))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def pooled(session, texts: list[str], *, batch_size: int = 32, tokenizer=None) -> np.ndarray:
    """Unit vectors of `texts` from an ONNX session of the network, in the order given,
    computed in batches of similar token length."""
    out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    if not texts:
        return out
    encodings = (tokenizer or window_tokenizer()).encode_batch(texts)
    inputs = {i.name for i in session.get_inputs()}
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    for start in range(0, len(texts), batch_size):
        picked = order[start : start + batch_size]
        out[picked] = _batch(session, inputs, [encodings[i] for i in picked])
    return out


def _batch(session, inputs: set[str], encodings) -> np.ndarray:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = session.run(None, {k: v for k, v in feeds.items() if k in inputs})[0]
    # sentence-transformers' mean pooling and Normalize module.
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return (summed / np.clip(norms, 1e-12, None)).astype(np.float32)
