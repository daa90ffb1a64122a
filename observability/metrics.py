"""Prometheus metrics, shared by every process of the platform through prometheus_client's
multiprocess mode.

Why multiprocess mode: gunicorn may run several worker processes, and the Celery worker (which
embeds chunks) is another process, yet `/metrics` must show one sum. Each process writes its
values to memory-mapped files under METRICS_DIR (prometheus_client's PROMETHEUS_MULTIPROC_DIR);
the `/metrics` view merges them with MultiProcessCollector. `platform/run.py` empties the folder
when the platform starts.

Names follow the OpenTelemetry semantic conventions, spelled as the OpenTelemetry Prometheus
exporter spells them (dots become underscores, the unit is a suffix): `gen_ai.client.token.usage`
is `gen_ai_client_token_usage`, `http.server.request.duration` (seconds) is
`http_server_request_duration_seconds`.

Import this module only after Django settings are configured: it points prometheus_client at
METRICS_DIR before prometheus_client is imported.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from django.conf import settings


def _prepare_multiprocess_dir() -> Path:
    """METRICS_DIR exists and prometheus_client writes there (it reads the variable when a
    process first writes a value, and again after a fork)."""
    path = Path(settings.METRICS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


METRICS_DIR = _prepare_multiprocess_dir()

from prometheus_client import (  # noqa: E402 - the multiprocess folder must be set first
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.multiprocess import (  # noqa: E402
    MultiProcessCollector,
    mark_process_dead,
)

# Bucket boundaries advised by the OpenTelemetry semantic conventions.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
GEN_AI = ("gen_ai_operation_name", "gen_ai_request_model")

http_server_request_duration = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP server requests (OpenTelemetry http.server.request.duration).",
    ["http_route", "http_request_method", "http_response_status_code"],
    buckets=HTTP_BUCKETS,
)
tenant_requests = Counter(
    "tenantry_tenant_requests",
    "API requests per tenant and endpoint kind. `tenant` is the slug for the first "
    "METRICS_TENANT_LABELS tenants a process sees and `other` beyond them.",
    ["tenant", "kind"],
)
tenant_tokens = Counter(
    "tenantry_tenant_tokens",
    "Generation tokens per tenant (input: prompt, output: completion).",
    ["tenant", "gen_ai_token_type"],
)
gen_ai_token_usage = Histogram(
    "gen_ai_client_token_usage",
    "Tokens used per generation (OpenTelemetry gen_ai.client.token.usage).",
    ["gen_ai_operation_name", "gen_ai_token_type", "gen_ai_request_model"],
    buckets=TOKEN_BUCKETS,
)
gen_ai_time_to_first_token = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "From the request to the first generated token (OpenTelemetry "
    "gen_ai.server.time_to_first_token).",
    GEN_AI,
    buckets=TTFT_BUCKETS,
)
gen_ai_server_request_duration = Histogram(
    "gen_ai_server_request_duration_seconds",
    "From the request to the last token, retrieval included (OpenTelemetry "
    "gen_ai.server.request.duration).",
    [*GEN_AI, "error_type"],
    buckets=DURATION_BUCKETS,
)
gen_ai_client_operation_duration = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Time spent in the model itself: generation (chat) or encoding (embeddings) "
    "(OpenTelemetry gen_ai.client.operation.duration).",
    GEN_AI,
    buckets=DURATION_BUCKETS,
)
search_duration = Histogram(
    "tenantry_search_duration_seconds",
    "Server time of one search (query embedding included).",
    ["mode"],
    buckets=HTTP_BUCKETS,
)
cache_requests = Counter(
    "tenantry_cache_requests",
    "Cache lookups: answers per answer, embeddings per text.",
    ["cache", "result"],
)
embedding_texts = Counter(
    "tenantry_embedding_texts",
    "Texts embedded (from the model or the embedding cache), by purpose.",
    ["purpose"],
)
chunks_embedded = Counter(
    "tenantry_chunks_embedded",
    "Chunks embedded and stored by the ingestion pipeline.",
    ["tenant"],
)
celery_task_duration = Histogram(
    "tenantry_celery_task_duration_seconds",
    "Duration of Celery tasks by task name and final state.",
    ["task", "state"],
    buckets=DURATION_BUCKETS,
)


# --- Bounded tenant labels -------------------------------------------------------------------
_tenant_labels: set[str] = set()
_tenant_labels_lock = threading.Lock()
OTHER_TENANTS = "other"


def tenant_label(tenant) -> str:
    """The tenant's slug as a label value, for at most METRICS_TENANT_LABELS tenants per process;
    `other` for the rest, so a platform with thousands of tenants cannot explode the series."""
    slug = getattr(tenant, "slug", None) or (tenant if isinstance(tenant, str) else "")
    if not slug:
        return "none"
    if slug in _tenant_labels:
        return slug
    with _tenant_labels_lock:
        if slug in _tenant_labels:
            return slug
        if len(_tenant_labels) < settings.METRICS_TENANT_LABELS:
            _tenant_labels.add(slug)
            return slug
    return OTHER_TENANTS


def reset_tenant_labels() -> None:
    """Forget which tenants have a label in this process (tests)."""
    with _tenant_labels_lock:
        _tenant_labels.clear()


# --- Scrape-time values and the exposition ---------------------------------------------------
class IngestionQueueCollector:
    """`tenantry_ingestion_queue_depth{queue=...}`: messages waiting in each Celery queue (one
    sample per queue of broker.queue_names(): ingest, evaluation, maintenance, the default
    `celery`), read from Redis when Prometheus scrapes (a gauge set by some process would go
    stale). The name predates the split by workload and stays: dashboards and alerts scrape it;
    `queue="ingest"` is the ingestion backlog."""

    def collect(self):
        from .broker import queue_depths

        gauge = GaugeMetricFamily(
            "tenantry_ingestion_queue_depth",
            "Tasks waiting in each Celery queue (label queue: a workload's queue), read at "
            "scrape time.",
            labels=["queue"],
        )
        for queue, depth in (queue_depths() or {}).items():
            gauge.add_metric([queue], depth)
        yield gauge


def exposition() -> tuple[bytes, str]:
    """The merged metrics of every process, in the Prometheus text format."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(METRICS_DIR))
    registry.register(IngestionQueueCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """A web worker process ended: drop its live gauges (counters and histograms stay summed)."""
    mark_process_dead(pid, path=str(METRICS_DIR))
