"""gunicorn settings for Tenantry.

Threads, not processes: the models are loaded once per process and shared by its threads.
"""

import os

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

    In a thread: the worker starts serving at once, and a request that arrives first simply
    waits on the same once-per-process load.
    """
    import threading

    from django.conf import settings

    def warm():
        if settings.EMBEDDING_PRELOAD:
            from rag.embedding import get_model as embedding_model

            embedding_model()
        if settings.LLM_PRELOAD:
            from rag.generation.gate import get_gate
            from rag.generation.model import get_model as generation_model

            # A first turn evaluates the shared prompt prefix, so no request pays for it.
            with get_gate().turn(generation_model()):
                pass

    threading.Thread(target=warm, name="warm-models", daemon=True).start()
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
