"""Observability: health probes (/healthz, /readyz), Prometheus metrics (/metrics, merged across
processes), OpenTelemetry traces (only with OTEL_EXPORTER_OTLP_ENDPOINT set), Server-Timing.

The services report through `observability.genai`; nothing here may fail a request or a task.
"""
