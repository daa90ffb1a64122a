from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """Health endpoints, Prometheus metrics and OpenTelemetry tracing for every process."""

    name = "observability"
