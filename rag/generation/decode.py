"""The decode loop: prompt tokens in, text deltas out, with exact token accounting.

Why not `create_chat_completion`: it tokenizes the whole prompt with special tokens on (see
prompt.py for why untrusted text must not be), and its streaming mode reports no usage. This
loop drives `Llama.generate` directly, so every generated token is counted and the cost per
token is one sampler call plus an incremental UTF-8 decode.
"""

from __future__ import annotations

import codecs
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings

from .. import compute_thread
from .model import LoadedModel


@dataclass
class DecodeStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "length"  # "stop" when the model ended its turn
    first_token_at: float | None = None
    decoded_at: float | None = None  # the last token decoded (the support check comes after)
    finished_at: float | None = None


def sampling_params(temperature: float) -> dict:
    """Arguments for `Llama.generate` (the benchmark gives raw llama.cpp the same ones)."""
    return {
        "temp": temperature,
        "top_k": 40,
        "top_p": 0.95,
        "min_p": 0.05,
        "repeat_penalty": settings.LLM_REPEAT_PENALTY,
    }


def decode_stream(
    *,
    model: LoadedModel,
    tokens: list[int],
    max_tokens: int,
    temperature: float,
    stats: DecodeStats,
) -> Iterator[str]:
    """Yield text deltas of the model's continuation of `tokens` (at most `max_tokens`).

    The caller holds the gate for the whole iteration. Temperature 0 is greedy decoding.
    The model computes on the process's compute thread (rag/compute_thread.py says why), at
    most `max_tokens` ahead of the reader; a reader that stops stops it.
    """
    stats.prompt_tokens = len(tokens)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    sampling = sampling_params(temperature)
    if max_tokens <= 0:
        stats.finished_at = time.perf_counter()
        return

    def produce(emit) -> None:
        with contextlib.closing(model.llm.generate(tokens, **sampling)) as steps:
            for n, token in enumerate(steps, start=1):
                if not emit(token) or model.is_end_of_generation(token) or n >= max_tokens:
                    return

    # Closed here, not when collected: a reader that stops early (a client gone) leaves the
    # compute thread done with the model before the caller releases the gate.
    with contextlib.closing(compute_thread.stream(produce)) as produced:
        for token, at in produced:
            if model.is_end_of_generation(token):
                stats.finish_reason = "stop"
                break
            if stats.first_token_at is None:
                stats.first_token_at = at
            stats.completion_tokens += 1
            text = decoder.decode(model.llm.detokenize([token]))
            if text:
                yield text
            if stats.completion_tokens >= max_tokens:
                break
    stats.decoded_at = time.perf_counter()
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail
    stats.finished_at = time.perf_counter()
