"""Fair ingestion across tenants, on top of Celery: each tenant has at most
INGEST_TENANT_INFLIGHT documents in the broker's queue; the rest wait in a backlog of its own.

Why: Celery's queue is first come, first served. A tenant uploading a thousand documents put a
thousand messages in front of the next tenant's one, which then waited for all of them. Here
an upload goes into its tenant's backlog (a Redis sorted set by arrival, so a document sent
twice is there once), and only as many as the tenant's in-flight allowance are handed to
Celery. Each finished ingestion hands over the tenant's next. So another tenant's document
waits behind at most INGEST_TENANT_INFLIGHT documents of each busy tenant, however many they
have queued (tests/rag/test_fair_ingestion.py).

Nothing is lost to this: the document row (status `queued`) stays the truth. A message lost
with a killed worker, or a backlog lost with Redis, is found by the stalled-document sweep
(rag.services.recovery), which sends the document here again; an in-flight entry older than
INGEST_STUCK_AFTER_SECONDS stops counting against the tenant's allowance.
"""

from __future__ import annotations

import logging
import time

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from tenants.services.quotas import redis_client

logger = logging.getLogger(__name__)

TASK = "rag.tasks.ingest_document"
TENANTS = "tenantry:ingest:tenants"  # tenants that may have a backlog (for the sweep)

# Moves up to the tenant's free allowance from its backlog to in flight, atomically (two
# processes dispatching at once cannot both take the last free place).
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[2])
if free <= 0 then return {} end
local ids = redis.call('ZRANGE', KEYS[1], 0, free - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
end
return ids
"""


def _backlog(tenant_id: str) -> str:
    return f"tenantry:ingest:backlog:{tenant_id}"


def _inflight(tenant_id: str) -> str:
    return f"tenantry:ingest:inflight:{tenant_id}"


def submit(tenant_id: str, document_id: str) -> None:
    """Queue the document behind the tenant's others and dispatch what its allowance permits.
    Redis or the broker down: logged, and the document stays `queued` for the sweep."""
    try:
        client = redis_client()
        pipe = client.pipeline()
        pipe.zadd(_backlog(tenant_id), {document_id: time.time()}, nx=True)
        pipe.sadd(TENANTS, tenant_id)
        pipe.execute()
        dispatch(tenant_id)
    except (RedisError, BrokerError, OSError):
        logger.warning("cannot queue document %s of %s; left for the sweep", document_id, tenant_id)


def finished(tenant_id: str, document_id: str) -> None:
    """An ingestion ended (whatever its outcome): free its place and hand over the next."""
    try:
        redis_client().zrem(_inflight(tenant_id), document_id)
        dispatch(tenant_id)
    except (RedisError, BrokerError, OSError):
        logger.warning("cannot dispatch the next document of %s; left for the sweep", tenant_id)


def dispatch(tenant_id: str) -> list[str]:
    """Send the tenant's next documents to Celery, up to its free allowance; their ids."""
    now = time.time()
    stale_before = now - settings.INGEST_STUCK_AFTER_SECONDS
    taken = redis_client().eval(
        _TAKE,
        2,
        _backlog(tenant_id),
        _inflight(tenant_id),
        settings.INGEST_TENANT_INFLIGHT,
        now,
        stale_before,
    )
    ids = [i.decode() if isinstance(i, bytes) else i for i in taken]
    for document_id in ids:
        current_app.send_task(TASK, args=[tenant_id, document_id])
    return ids


def dispatch_all() -> int:
    """Every tenant with a backlog (the periodic sweep): what a lost hand-over left waiting."""
    client = redis_client()
    sent = 0
    for raw in client.smembers(TENANTS):
        tenant_id = raw.decode() if isinstance(raw, bytes) else raw
        sent += len(dispatch(tenant_id))
        if not client.zcard(_backlog(tenant_id)) and not client.zcard(_inflight(tenant_id)):
            client.srem(TENANTS, tenant_id)
    return sent


def backlog_size(tenant_id: str) -> int:
    return int(redis_client().zcard(_backlog(tenant_id)))
