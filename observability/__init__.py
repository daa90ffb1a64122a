"""Observability: health checks, Prometheus metrics, OpenTelemetry traces (work in progress)."""
