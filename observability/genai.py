"""What the services report about their work, for metrics and traces.

The services (search, answers, ingestion, caches) call these functions; this module decides
what becomes a Prometheus metric or a span. They never raise and cost next to nothing when
metrics or tracing are off: every body is wrapped, and a failure is logged at debug level.

Metrics (see observability.metrics): `gen_ai_client_token_usage`,
`gen_ai_server_time_to_first_token_seconds`, `gen_ai_server_request_duration_seconds`,
`gen_ai_client_operation_duration_seconds`, `tenantry_cache_requests_total`,
`tenantry_chunks_embedded_total`, ... Spans (only with OTEL_EXPORTER_OTLP_ENDPOINT set): one per
`stage(...)`, and one `chat <model>` span per answer carrying the `gen_ai.*` attributes.

`stage(name, **attributes)`: attribute names with a dot are used as they are
(`**{"gen_ai.request.model": "x"}`); these short names are translated:
`operation` → `gen_ai.operation.name`, `model` → `gen_ai.request.model`,
`input_tokens` / `prompt_tokens` → `gen_ai.usage.input_tokens`, `output_tokens` /
`completion_tokens` → `gen_ai.usage.output_tokens`, `tenant` (a Tenant or a slug) →
`tenantry.tenant`; any other name `x` becomes `tenantry.x`. A stage whose operation is not
`chat` also feeds `gen_ai.client.operation.duration`; a stage named `embed` is the
`embeddings` operation unless it names another (its time includes the embedding cache's
lookup: it is how long getting the vectors took). Chat durations come from `observe_answer`,
which knows whether the model ran.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from . import tracing

logger = logging.getLogger(__name__)

ATTRIBUTE_NAMES = {
    "operation": "gen_ai.operation.name",
    "model": "gen_ai.request.model",
    "input_tokens": "gen_ai.usage.input_tokens",
    "prompt_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "completion_tokens": "gen_ai.usage.output_tokens",
    "tenant": "tenantry.tenant",
}
# Stages that are a GenAI operation by their name alone.
STAGE_OPERATIONS = {"embed": "embeddings"}
PROVIDER = "tenantry"


def _metrics():
    """The metrics module, or None when METRICS_ENABLED is off."""
    if not settings.METRICS_ENABLED:
        return None
    from . import metrics

    return metrics


def _slug(tenant) -> str:
    return getattr(tenant, "slug", None) or (tenant if isinstance(tenant, str) else "")


def observe_search(*, tenant, mode: str, timings: dict, cache_hit: bool = False) -> None:
    """One search finished. `timings`: embed_ms, search_ms, total_ms."""
    try:
        metrics = _metrics()
        if metrics is not None:
            total = float(timings.get("total_ms", 0.0)) / 1000
            metrics.search_duration.labels(mode=mode or "hybrid").observe(total)
        if tracing.tracer() is not None:
            tracing.current_span_set(
                {"tenantry.tenant": _slug(tenant), "tenantry.search.mode": mode or ""}
            )
    except Exception:
        logger.debug("observe_search failed", exc_info=True)


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
    try:
        model = model or "unknown"
        ok = status == "ok"
        # The model ran unless the answer came from the cache or nothing relevant was found.
        generated = not cache_hit and bool(prompt_tokens or completion_tokens)
        seconds = {k: float(v) / 1000 for k, v in timings.items() if isinstance(v, int | float)}
        metrics = _metrics()
        if metrics is not None:
            labels = {"gen_ai_operation_name": "chat", "gen_ai_request_model": model}
            if generated:
                for kind, count in (("input", prompt_tokens), ("output", completion_tokens)):
                    metrics.gen_ai_token_usage.labels(gen_ai_token_type=kind, **labels).observe(
                        count
                    )
                    metrics.tenant_tokens.labels(
                        tenant=metrics.tenant_label(tenant), gen_ai_token_type=kind
                    ).inc(count)
                metrics.gen_ai_client_operation_duration.labels(**labels).observe(
                    seconds.get("generate_ms", 0.0)
                )
            if ok:
                metrics.gen_ai_time_to_first_token.labels(**labels).observe(
                    seconds.get("ttft_ms", 0.0)
                )
            metrics.gen_ai_server_request_duration.labels(
                error_type="" if ok else (status or "error"), **labels
            ).observe(seconds.get("total_ms", 0.0))
            metrics.cache_requests.labels(
                cache="answer", result="hit" if cache_hit else "miss"
            ).inc()
        if tracing.tracer() is not None:
            end = time.time_ns()
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": int(prompt_tokens),
                "gen_ai.usage.output_tokens": int(completion_tokens),
                "tenantry.tenant": _slug(tenant),
                "tenantry.source": source or "",
                "tenantry.cache_hit": bool(cache_hit),
                **{f"tenantry.timings.{k}": float(v) for k, v in timings.items()},
            }
            if not ok:
                attributes["error.type"] = status or "error"
            tracing.record_span(
                f"chat {model}",
                start_ns=end - int(seconds.get("total_ms", 0.0) * 1e9),
                end_ns=end,
                attributes=attributes,
                error=not ok,
            )
    except Exception:
        logger.debug("observe_answer failed", exc_info=True)


def observe_embedding(*, tenant, texts: int, cached: int, purpose: str) -> None:
    """`texts` embedded for `purpose` ("query", "ingest", "api"), of which `cached` came
    from the embedding cache."""
    try:
        metrics = _metrics()
        if metrics is None or texts <= 0:
            return
        metrics.embedding_texts.labels(purpose=purpose or "other").inc(texts)
        if cached:
            metrics.cache_requests.labels(cache="embedding", result="hit").inc(cached)
        if texts > cached:
            metrics.cache_requests.labels(cache="embedding", result="miss").inc(texts - cached)
    except Exception:
        logger.debug("observe_embedding failed", exc_info=True)


def observe_chunks_embedded(*, tenant, chunks: int) -> None:
    """A document's chunks were embedded and stored by the ingestion pipeline."""
    try:
        metrics = _metrics()
        if metrics is not None and chunks > 0:
            metrics.chunks_embedded.labels(tenant=metrics.tenant_label(tenant)).inc(chunks)
    except Exception:
        logger.debug("observe_chunks_embedded failed", exc_info=True)


@contextmanager
def stage(name: str, **attributes) -> Iterator[None]:
    """A span for one stage of a request (embed, retrieve, prompt, generate, ...), with
    `gen_ai.*` or `tenantry.*` attributes. A no-op when tracing is off (and no operation other
    than chat is named)."""
    operation = (
        attributes.get("operation")
        or attributes.get("gen_ai.operation.name")
        or STAGE_OPERATIONS.get(name)
    )
    if not tracing.enabled() and (not operation or operation == "chat"):
        yield
        return
    started = time.perf_counter()
    opened = _open_span(name, attributes, operation)
    failed = False
    try:
        if opened is None:
            yield
        else:
            with opened:
                yield
    except BaseException:
        failed = True
        raise
    finally:
        if operation and operation != "chat":
            _record_operation(operation, attributes, time.perf_counter() - started, failed)


def _open_span(name: str, attributes: dict, operation: str | None):
    try:
        if tracing.tracer() is None:
            return None
        span_attributes = _span_attributes(name, attributes)
        if operation:
            span_attributes.setdefault("gen_ai.operation.name", str(operation))
            span_attributes.setdefault("gen_ai.provider.name", PROVIDER)
        return tracing.span(name, span_attributes)
    except Exception:
        logger.debug("could not open the span %s", name, exc_info=True)
        return None


def _span_attributes(name: str, attributes: dict) -> dict:
    out: dict = {"tenantry.stage": name}
    for key, value in attributes.items():
        target = key if "." in key else ATTRIBUTE_NAMES.get(key, f"tenantry.{key}")
        if target == "tenantry.tenant" or hasattr(value, "slug"):
            value = _slug(value)
        elif value is None:
            continue
        elif not isinstance(value, str | bool | int | float):
            value = str(value)
        out[target] = value
    return out


def _record_operation(operation: str, attributes: dict, seconds: float, failed: bool) -> None:
    try:
        metrics = _metrics()
        if metrics is None or failed:
            return
        model = attributes.get("model") or attributes.get("gen_ai.request.model")
        metrics.gen_ai_client_operation_duration.labels(
            gen_ai_operation_name=str(operation), gen_ai_request_model=str(model or "unknown")
        ).observe(seconds)
    except Exception:
        logger.debug("could not record the %s duration", operation, exc_info=True)
