"""Traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans per stage with `gen_ai.*` attributes
reach an OTLP/HTTP collector; without it, no tracer provider and no exporter exist at all."""

from __future__ import annotations

import gzip
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import service_env
from tests.observability.conftest import QUESTION

ROOT = Path(__file__).resolve().parents[2]
OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

# Runs in a fresh process: one search and one answer through Django's test client.
REQUESTS = """
import json, sys
import django
django.setup()
from django.test import Client
key = sys.argv[1]
client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
search = client.post("/api/v1/search", {"query": sys.argv[2]}, content_type="application/json")
answer = client.post(
    "/api/v1/answer",
    {"question": sys.argv[2], "max_tokens": 4, "cache": False},
    content_type="application/json",
)
assert client.get("/healthz").status_code == 200
from observability import tracing
tracing.force_flush()
import opentelemetry.trace as api
print(json.dumps({
    "status": [search.status_code, answer.status_code],
    "usage": answer.json().get("usage"),
    "model": answer.json().get("model"),
    "modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
    "provider": type(api.get_tracer_provider()).__name__,
}))
"""


class Collector(http.server.ThreadingHTTPServer):
    """A tiny OTLP/HTTP receiver: records every ExportTraceServiceRequest posted to it."""

    def __init__(self):
        self.requests: list = []
        super().__init__(("127.0.0.1", 0), CollectorHandler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


class CollectorHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            self.server.requests.append(
                trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            )
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run(key: str, **env: str) -> dict:
    environment = service_env(ALLOWED_HOSTS="testserver", **env)
    for name in OTEL_VARIABLES:
        if name not in env:
            environment.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", REQUESTS, key, QUESTION],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _attributes(span) -> dict:
    out = {}
    for item in span.attributes:
        value = item.value
        out[item.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_spans_per_stage_with_gen_ai_attributes_reach_the_collector(zoo, collector):
    tenant, key, _ = zoo
    result = _run(key, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint, OTEL_SERVICE_NAME="t")
    assert result["status"] == [200, 200]
    assert result["provider"] == "TracerProvider"
    spans = collector.spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert {"POST /api/v1/search", "POST /api/v1/answer", "GET /healthz"} <= set(by_name)
    assert {"embed", "retrieve", "prompt", "generate"} <= set(by_name)
    resource = collector.requests[0].resource_spans[0].resource
    assert {"key": "service.name", "value": "t"} in [
        {"key": a.key, "value": a.value.string_value} for a in resource.attributes
    ]

    server = _attributes(by_name["POST /api/v1/answer"][0])
    assert server["http.route"] == "/api/v1/answer"
    assert server["http.response.status_code"] == 200
    assert server["tenantry.tenant"] == tenant.slug

    embed = _attributes(by_name["embed"][0])
    assert embed["gen_ai.operation.name"] == "embeddings"
    assert embed["tenantry.tenant"] == tenant.slug

    generate = _attributes(by_name["generate"][0])
    assert generate["gen_ai.operation.name"] == "chat"
    assert generate["gen_ai.request.model"] == result["model"]

    [chat] = by_name[f"chat {result['model']}"]
    attributes = _attributes(chat)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == result["model"]
    assert attributes["gen_ai.usage.input_tokens"] == result["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == result["usage"]["completion_tokens"]
    assert attributes["tenantry.tenant"] == tenant.slug
    # The stages of one request are one trace, under its server span.
    answer_trace = by_name["POST /api/v1/answer"][0].trace_id
    assert by_name["generate"][0].trace_id == answer_trace
    assert chat.trace_id == answer_trace


def test_without_an_endpoint_nothing_is_configured_or_exported(make_tenant, make_key):
    key = make_key(make_tenant("pool"))
    result = _run(key)
    assert result["status"] == [200, 200]
    # redis-py probes for the OpenTelemetry *metrics* SDK when it is installed; nothing of
    # ours imports the trace SDK or an exporter, and the global provider stays the no-op one.
    assert not [
        m
        for m in result["modules"]
        if m.startswith(("opentelemetry.sdk.trace", "opentelemetry.exporter"))
    ]
    assert result["provider"] == "ProxyTracerProvider"
