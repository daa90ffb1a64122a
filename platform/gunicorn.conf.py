"""gunicorn settings for Tenantry.

Threads, not processes: the models are loaded once per process and shared by its threads.
"""

import os

# Read by the settings when the app is loaded, after this file: the web process's threads share
# pooled database connections (config/settings.py, DB_POOL), filled before it reports ready.
os.environ.setdefault("DB_POOL", "true")
workers = int(os.environ.get("WEB_WORKERS", "1"))
threads = int(os.environ.get("WEB_THREADS", "8"))
# gthread with request heads gathered by its event loop, so slow clients cost no thread.
worker_class = "config.web_worker.HeadBufferingWorker"
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))
# Load the app in the master so a role that can bypass RLS stops the server before it binds.
preload_app = True
accesslog = "-"
graceful_timeout = 10
# Idle kept-alive connections cost a socket, not a thread (config/web_worker.py). Longer than
# clients' usual pauses between requests: at gunicorn's 2 s default a client reusing a
# connection just as the server closes it got no answer (seen in `make bench`'s load section).
keepalive = int(os.environ.get("WEB_KEEPALIVE", "15"))


def post_worker_init(worker):
    """Warm the models in each worker so the first question does not pay for loading them.

    Beside the server: it answers probes at once, /readyz with 503 until the models are loaded
    (rag/warmup.py), and `make run` waits for every process's warm marker before it says the
    platform is running.
    """
    from rag import warmup
    from tenants.pools import pools_configure

    pools_configure(worker.cfg.threads)
    warmup.warm_in_background("web", expected=worker.cfg.workers, generator=True)
    # Traces are exported per process, from after the fork (only with
    # OTEL_EXPORTER_OTLP_ENDPOINT set; otherwise this imports nothing).
    from observability import tracing

    if tracing.enabled():
        tracing.configure()


def child_exit(server, worker):
    """A worker process ended: prometheus_client's multiprocess files keep its counters and
    histograms (they stay in the sums) but its live gauges must go."""
    from django.conf import settings

    if settings.METRICS_ENABLED:
        from observability.metrics import process_exited

        process_exited(worker.pid)
