"""What the services report about their work, for metrics and traces.

The services (search, answers, ingestion, caches) call these functions; this module decides
what becomes a Prometheus metric or a span. They never raise and cost next to nothing when
metrics or tracing are off. (Contract first: the bodies are filled in with the metrics work.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def observe_search(*, tenant, mode: str, timings: dict, cache_hit: bool = False) -> None:
    """One search finished. `timings`: embed_ms, search_ms, total_ms."""


def observe_answer(
    *,
    tenant,
    model: str,
    source: str,
    prompt_tokens: int,
    completion_tokens: int,
    timings: dict,
    status: str,
    cache_hit: bool,
) -> None:
    """One answer finished. `timings`: embed_ms, retrieve_ms, queue_ms, ttft_ms, generate_ms,
    total_ms. Feeds gen_ai.client.token.usage, gen_ai.server.time_to_first_token,
    gen_ai.server.request.duration and gen_ai.client.operation.duration."""


def observe_embedding(*, tenant, texts: int, cached: int, purpose: str) -> None:
    """`texts` embedded for `purpose` ("query", "ingest", "api"), of which `cached` came
    from the embedding cache."""


def observe_chunks_embedded(*, tenant, chunks: int) -> None:
    """A document's chunks were embedded and stored by the ingestion pipeline."""


@contextmanager
def stage(name: str, **attributes) -> Iterator[None]:
    """A span for one stage of a request (embed, retrieve, prompt, generate, ...), with
    `gen_ai.*` or `tenantry.*` attributes. A no-op when tracing is off."""
    yield
