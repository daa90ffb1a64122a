"""The one seam from data-plane services to the task queue: follow-up work is sent by name.

Why a seam: services that imported `rag.tasks` (which imports them back) formed a cycle hidden
by function-level imports, and every caller of a service enqueued whether it wanted to or
not; `ingest --inline` and tests then raced the worker for the same document. Here services
hand work off by task name when their transaction commits, and never import the task module
(paperless-ngx's consumer never imports its tasks either). Callers that do the work
themselves pass `enqueue=False` to the service instead.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

INGEST_DOCUMENT = "rag.tasks.ingest_document"
EVALUATE_SET = "rag.tasks.evaluate_set"


def after_commit(task: str, *args, using: str) -> None:
    """Send `task` with `args` once the transaction on `using` commits (at once outside one);
    nothing is sent if it rolls back.

    The broker being down does not fail the caller: what was committed stays (a document
    stays `queued`), and the stalled-document sweep (rag.services.recovery) sends it again once
    the broker is back. So an upload during a Redis outage is accepted (202) and ingested
    later, never lost and never left queued for good.
    """
    transaction.on_commit(lambda: _send(task, list(args)), using=using)


def _send(task: str, args: list) -> None:
    if task == INGEST_DOCUMENT:
        from . import fair_dispatch  # per-tenant backlogs in front of the broker's queue

        fair_dispatch.submit(*args)
        return
    try:
        current_app.send_task(task, args=args)
    except (BrokerError, RedisError, OSError):
        logger.warning("broker unavailable: %s%s left for the sweep to resend", task, args)
