"""Short-lived Redis connections for probes and scrapes: the readiness check and the queue depths.

Each call opens its own connection with second-long timeouts and closes it, so a Redis that is
down or slow costs a probe at most a second or two and never blocks a request thread for long.
The embedded Redis is named `redis+socket://PATH` (kombu's spelling); redis-py wants a socket
path for it.
"""

from __future__ import annotations

import logging
from contextlib import closing

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 1.0
# Celery's Redis transport keeps messages with a priority in sibling lists named
# `<queue>\x06\x16<priority>` (priority steps 3, 6, 9); plain messages go to `<queue>`.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


def redis_connection(url: str | None = None) -> redis.Redis:
    url = url or settings.REDIS_URL
    options = {
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),  # a probe reports, it does not insist
    }
    if url.startswith("redis+socket://"):
        path = url.removeprefix("redis+socket://").split("?", 1)[0]
        return redis.Redis(unix_socket_path=path, **options)
    return redis.Redis.from_url(url, **options)


def redis_ping(url: str | None = None) -> None:
    """Raises if Redis does not answer PING within the timeout."""
    with closing(redis_connection(url)) as client:
        client.ping()


def queue_name() -> str:
    """The default queue: where a task no route names goes."""
    return getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"


def queue_names() -> list[str]:
    """Every queue tasks are sent to: the default one, then each declared in
    CELERY_TASK_QUEUES (the dict form, or kombu Queue objects), once each."""
    declared = getattr(settings, "CELERY_TASK_QUEUES", None) or ()
    names = [name if isinstance(name, str) else name.name for name in declared]
    return list(dict.fromkeys([queue_name(), *names]))


def queue_depths(names: list[str] | None = None) -> dict[str, int] | None:
    """Messages waiting in each queue (default: every queue of queue_names()), by name, read
    over one connection; None if Redis cannot be reached."""
    names = queue_names() if names is None else names
    lists_per_queue = 1 + len(PRIORITY_STEPS)
    try:
        with closing(redis_connection()) as client:
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.llen(name)
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{name}{PRIORITY_SEPARATOR}{step}")
            lengths = pipe.execute()
    except Exception:  # a scrape must not fail because the broker is down
        logger.debug("could not read the Celery queue lengths", exc_info=True)
        return None
    return {
        name: int(sum(lengths[i * lists_per_queue : (i + 1) * lists_per_queue]))
        for i, name in enumerate(names)
    }


def queue_depth(name: str | None = None) -> int | None:
    """Messages waiting in one queue (default: the default queue), or None if Redis cannot be
    reached."""
    name = name or queue_name()
    depths = queue_depths([name])
    return None if depths is None else depths[name]
