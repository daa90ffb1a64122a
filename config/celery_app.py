"""The Celery application. Named celery_app.py so it never shadows the `celery` package."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tenantry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_unsafe_role(**kwargs) -> None:
    """Like the web server, a worker whose role could bypass RLS refuses to start."""
    # Names the worker's connections in pg_stat_activity (libpq reads PGAPPNAME), before the
    # first one opens; the pool's children inherit it.
    os.environ.setdefault("PGAPPNAME", "tenantry-worker")
    from tenants.roles import assert_app_role_cannot_bypass_rls

    assert_app_role_cannot_bypass_rls()


_pool_processes = 0  # set in the worker's main process, inherited by its pool's children


@worker_init.connect
def _count_pool_processes(sender=None, **kwargs) -> None:
    global _pool_processes
    _pool_processes = int(getattr(sender, "concurrency", 0) or 0)


@worker_process_init.connect
def _warm_models(**kwargs) -> None:
    """Size the embedding backends to this process's share of the cores
    (settings.WORKER_EMBEDDING_THREADS says why), and load them once per worker process,
    before the first task waits. Each process then leaves its warm marker (rag/warmup.py),
    which `make run` waits for."""
    import logging

    from django.conf import settings

    from rag import embedders, warmup

    embedders.set_threads(settings.WORKER_EMBEDDING_THREADS)
    expected = _pool_processes or settings.CELERY_WORKER_CONCURRENCY
    warmup.warm("worker", expected=expected, generator=False)
    if settings.EMBEDDING_PRELOAD:
        logging.getLogger(__name__).info(
            "embedding backends loaded: %s, %d threads each",
            ", ".join(embedders.loaded()),
            settings.WORKER_EMBEDDING_THREADS,
        )


@worker_process_init.connect
def _observability(**kwargs) -> None:
    """Traces are exported per process (only with OTEL_EXPORTER_OTLP_ENDPOINT set)."""
    from observability.celery import process_started

    process_started()


@task_prerun.connect
@task_postrun.connect
def _age_out_connections(task=None, **kwargs) -> None:
    """What Django does around each request: close a connection past CONN_MAX_AGE, one left
    in a transaction or broken by an error, and health-check the rest on their next use.
    Connections are otherwise kept between tasks (settings.CELERY_DB_REUSE_MAX says why).
    A task applied eagerly runs inside its caller's connection use and is left alone."""
    if not getattr(getattr(task, "request", None), "is_eager", False):
        close_old_connections()


@task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    from observability.celery import task_started

    task_started(task_id, task)


@task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    from observability.celery import task_finished

    task_finished(task_id, task, state)
