"""The `Server-Timing` header (W3C Server Timing) from a response's `timings` object.

Browsers' developer tools and any HTTP client can then see where a request's time went without
parsing the body. Durations are milliseconds, as in `timings`.
"""

from __future__ import annotations

# Header metric name -> the keys of `timings` that may carry it (the first present wins).
SEARCH_STAGES = (
    ("embed", ("embed_ms",)),
    ("retrieve", ("retrieve_ms", "search_ms")),
    ("search", ("search_ms",)),  # the name this header used first; kept for its readers
    ("total", ("total_ms",)),
)
ANSWER_STAGES = (
    ("embed", ("embed_ms",)),
    ("retrieve", ("retrieve_ms", "search_ms")),
    ("queue", ("queue_ms",)),
    ("ttft", ("ttft_ms",)),
    ("generate", ("generate_ms",)),
    ("total", ("total_ms",)),
)
DESCRIPTIONS = {
    "embed": "query embedding",
    "retrieve": "retrieval",
    "search": "retrieval",
    "queue": "waiting for the generator",
    "ttft": "time to first token",
    "generate": "generation",
    "total": "total",
}


def server_timing(timings: dict, stages=SEARCH_STAGES, *, cache: bool | None = None) -> str:
    """`embed;dur=9.1;desc="query embedding", retrieve;dur=3.2;..., total;dur=12.5`.

    Stages missing from `timings` are left out; `cache` adds `cache;desc="hit"` (or miss).
    """
    parts = []
    for name, keys in stages:
        value = next((timings[k] for k in keys if isinstance(timings.get(k), int | float)), None)
        if value is not None:
            parts.append(f'{name};dur={round(float(value), 2)};desc="{DESCRIPTIONS[name]}"')
    if cache is not None:
        parts.append(f'cache;desc="{"hit" if cache else "miss"}"')
    return ", ".join(parts)
