"""The Celery application. Named celery_app.py so it never shadows the `celery` package."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tenantry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _refuse_unsafe_role(**kwargs) -> None:
    """Like the web server, a worker whose role could bypass RLS refuses to start."""
    from tenants.roles import assert_app_role_cannot_bypass_rls

    assert_app_role_cannot_bypass_rls()


@worker_process_init.connect
def _warm_models(**kwargs) -> None:
    """Load the embedding model once per worker process, before the first task waits for it."""
    from django.conf import settings

    if settings.EMBEDDING_PRELOAD:
        import logging

        import torch

        from rag.embedding import get_model

        get_model()
        logging.getLogger(__name__).info(
            "embedding model loaded; torch uses %d threads", torch.get_num_threads()
        )


@worker_process_init.connect
def _observability(**kwargs) -> None:
    """Traces are exported per process (only with OTEL_EXPORTER_OTLP_ENDPOINT set)."""
    from observability.celery import process_started

    process_started()


@task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    from observability.celery import task_started

    task_started(task_id, task)


@task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    from observability.celery import task_finished

    task_finished(task_id, task, state)
