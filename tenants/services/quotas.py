"""Per-tenant quotas and their enforcement.

- Hourly request limits per kind (answer, search, ingest, embeddings): a fixed one-hour window
  per tenant and kind in PostgreSQL, admitted by one conditional upsert (`quota_admit`).
- Concurrent generations: leases in a Redis sorted set, taken and dropped by a Lua script, so
  the limit holds across every web process and worker (`generation_slot`).
- Documents and stored bytes: checked under a per-tenant advisory lock inside the tenant
  context, before a document is stored (`storage_admit`).
- Tokens per response: read by the generation code (`quota_max_tokens`).
- Tokens per hour and per day, per model: reserved and refunded by
  tenants.services.token_budgets (its limits are set here, with the others).

Refusals raise QuotaExceeded, which carries the HTTP status, the stable problem code and the
headers (`Retry-After`, `RateLimit-Policy`, `RateLimit`) the API answers with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import redis
from django.conf import settings
from django.db import connections
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..context import current_binding, data_alias
from ..models import Tenant, TenantQuota, UsageKind
from ..planes import data_plane

logger = logging.getLogger(__name__)

# Counters and the ledger are written on their own connection, outside the request's
# transaction (see the "Quotas and metering" settings).
METERING_DB = "metering"
WINDOW_SECONDS = 3600
KINDS = tuple(UsageKind.values)
QUOTA_FIELDS = (
    "answer_per_hour",
    "search_per_hour",
    "ingest_per_hour",
    "embeddings_per_hour",
    "max_tokens_per_response",
    "max_documents",
    "max_storage_bytes",
    "max_concurrent_generations",
    "tokens_per_hour",
    "tokens_per_day",
)
_BIG_FIELDS = ("max_storage_bytes", "tokens_per_hour", "tokens_per_day")
_INT_MAX = 2**31 - 1
_BIGINT_MAX = 2**63 - 1


class QuotaExceeded(Exception):
    """A request refused by a quota: `status` 429 or 413, `code` one of `rate_limited`,
    `quota_exceeded`, `storage_quota_exceeded`, `token_budget_exhausted`; `headers` to send
    with the refusal; `extra`: members for the problem body (e.g. `retry_after`)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        *,
        extra: dict | None = None,
    ):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict = dict(extra or {})


# --- Quotas (selector and service) -----------------------------------------------------------


def quota_defaults() -> dict[str, int]:
    """The quotas a tenant gets on first use (settings.QUOTA_DEFAULTS, from the environment)."""
    return {name: int(settings.QUOTA_DEFAULTS[name]) for name in QUOTA_FIELDS}


def quota_get(*, tenant: Tenant) -> TenantQuota:
    """The tenant's quotas, created with the defaults if it has none yet."""
    quota, _ = TenantQuota.objects.using(METERING_DB).get_or_create(
        tenant_id=tenant.pk, defaults=quota_defaults()
    )
    return quota


def quota_set(*, tenant: Tenant, **values) -> TenantQuota:
    """Change some of the tenant's quotas; ValueError names an unknown quota or a bad value."""
    clean = {name: _positive_int(name, value) for name, value in values.items()}
    if not clean:
        raise ValueError("Name at least one quota to set.")
    quota = quota_get(tenant=tenant)
    for name, value in clean.items():
        setattr(quota, name, value)
    quota.save(update_fields=[*clean, "updated_at"])
    return quota


def quota_max_tokens(*, tenant: Tenant) -> int:
    """The most tokens one generated response of the tenant may have."""
    return quota_get(tenant=tenant).max_tokens_per_response


def _positive_int(name: str, value) -> int:
    if name not in QUOTA_FIELDS:
        raise ValueError(f"Unknown quota {name!r}; quotas are: {', '.join(QUOTA_FIELDS)}.")
    try:
        number = int(value) if not isinstance(value, bool | float) else None
    except (TypeError, ValueError):
        number = None
    ceiling = _BIGINT_MAX if name in _BIG_FIELDS else _INT_MAX
    if number is None or not 0 < number <= ceiling:
        raise ValueError(f"{name} must be a positive integer (at most {ceiling}), not {value!r}.")
    return number


# --- Hourly request limits -------------------------------------------------------------------

# The quota clock: the database's now() (one clock for every web process and worker, whatever
# their hosts' clocks say), unless a test pins it with quota_clock(). Every window start comes
# from WINDOW_START_SQL, with the parameters of clock_params().
NOW_SQL = "coalesce(%(quota_now)s::timestamptz, now())"
WINDOW_START_SQL = f"date_trunc('hour', {NOW_SQL}, 'UTC')"
_pinned_now: datetime | None = None


def clock_params() -> dict[str, datetime | None]:
    """The parameters NOW_SQL and WINDOW_START_SQL need (None: the database's now())."""
    return {"quota_now": _pinned_now}


@contextmanager
def quota_clock(at: datetime) -> Iterator[None]:
    """Pin the quota clock of this process at `at` (an aware datetime), for tests.

    Request windows are clock hours, so a test counting requests could otherwise see the
    hour change mid-test and would have to sleep past the boundary. Production never calls
    this: there the database's now() stays the only clock."""
    global _pinned_now
    previous, _pinned_now = _pinned_now, at
    try:
        yield
    finally:
        _pinned_now = previous


# One statement: read the tenant's limit (its TenantQuota row, or the default a first use would
# give it), and take `amount` requests from the current window if they fit under it, all or
# none. On conflict PostgreSQL locks the row and evaluates the WHERE on its latest version, so
# concurrent requests are admitted one after another and never more than the limit. A refusal
# writes nothing. `{limit_column}` is one of the `<kind>_per_hour` fields (admit_sql()).
_ADMIT_SQL = f"""
WITH current_window AS (SELECT {WINDOW_START_SQL} AS start),
quota AS (
    SELECT coalesce(
        (SELECT {{limit_column}} FROM tenants_tenantquota WHERE tenant_id = %(tenant_id)s),
        %(default_limit)s
    ) AS per_hour
),
admitted AS (
    INSERT INTO tenants_requestcounter AS counter (tenant_id, kind, window_start, count)
    SELECT %(tenant_id)s, %(kind)s, current_window.start, %(amount)s
    FROM current_window, quota
    WHERE %(amount)s <= quota.per_hour
    ON CONFLICT (tenant_id, kind, window_start)
    DO UPDATE SET count = counter.count + EXCLUDED.count
    WHERE counter.count + EXCLUDED.count <= (SELECT per_hour FROM quota)
    RETURNING counter.count
)
SELECT
    (SELECT count FROM admitted),
    current_window.start,
    greatest(
        1, ceil(extract(epoch FROM current_window.start + interval '1 hour' - {NOW_SQL}))
    )::int,
    quota.per_hour
FROM current_window, quota
"""  # noqa: S608 - only the constant clock expressions are formatted in


def admit_sql(kind: str) -> str:
    """The admission statement for `kind` (a value of UsageKind, checked by kind_value)."""
    return _ADMIT_SQL.format(limit_column=f"{kind}_per_hour")


USED_SQL = f"""
SELECT coalesce(max(count), 0) FROM tenants_requestcounter
WHERE tenant_id = %(tenant_id)s AND kind = %(kind)s AND window_start = {WINDOW_START_SQL}
"""  # noqa: S608 - only the constant clock expression is formatted in

PRUNE_SQL = """
DELETE FROM tenants_requestcounter
WHERE tenant_id = %(tenant_id)s AND kind = %(kind)s AND window_start < %(window_start)s
"""


def quota_admit(*, tenant: Tenant, kind: str, amount: int = 1) -> dict[str, str]:
    """Take `amount` of the tenant's `kind` requests of this hour, all or none, or raise
    QuotaExceeded (429 `rate_limited`). Returns the RateLimit headers (IETF httpapi draft) for
    the response.

    `amount` is what the request costs: 1, or for a batch its items (each input of an
    embeddings request counts as one request, so a batch cannot buy 256 for the price of 1).
    """
    kind = kind_value(kind)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise ValueError(f"amount must be a positive integer, not {amount!r}.")
    params = {
        "tenant_id": tenant.pk,
        "kind": kind,
        "amount": amount,
        "default_limit": quota_defaults()[f"{kind}_per_hour"],
    }
    with connections[METERING_DB].cursor() as cursor:
        cursor.execute(admit_sql(kind), {**params, **clock_params()})
        count, window_start, reset, limit = cursor.fetchone()
        if count == amount:
            # A new window: earlier ones of this tenant and kind are no longer needed.
            cursor.execute(PRUNE_SQL, {**params, "window_start": window_start})
        used = count
        if count is None:
            # One request refused: the window was full. A batch: say how much is left.
            used = limit
            if amount > 1:
                cursor.execute(USED_SQL, {**params, **clock_params()})
                used = cursor.fetchone()[0]
    headers = rate_limit_headers(kind=kind, limit=limit, used=used, reset=reset)
    if count is None:
        raise QuotaExceeded(
            429,
            "rate_limited",
            _refusal(kind=kind, limit=limit, amount=amount, used=used, reset=reset),
            {"Retry-After": str(reset), **headers},
        )
    return headers


def _refusal(*, kind: str, limit: int, amount: int, used: int, reset: int) -> str:
    if amount == 1:
        return (
            f"The tenant's limit of {limit} {kind} requests per hour is reached; "
            f"retry in {reset} s."
        )
    if amount > limit:
        return (
            f"This request counts as {amount} {kind} requests, more than the tenant's limit of "
            f"{limit} per hour; send smaller batches."
        )
    return (
        f"This request counts as {amount} {kind} requests and {max(0, limit - used)} of the "
        f"tenant's {limit} per hour remain; retry in {reset} s."
    )


def kind_value(kind: str) -> str:
    """The plain value of a request kind (a UsageKind or its string); ValueError if unknown."""
    if kind not in KINDS:
        raise ValueError(f"Unknown request kind {kind!r}; kinds are: {', '.join(KINDS)}.")
    return UsageKind(kind).value


def rate_limit_headers(*, kind: str, limit: int, used: int, reset: int) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` as in draft-ietf-httpapi-ratelimit-headers."""
    return {
        "RateLimit-Policy": f'"{kind}";q={limit};w={WINDOW_SECONDS}',
        "RateLimit": f'"{kind}";r={max(0, limit - used)};t={reset}',
    }


# --- Concurrent generations ------------------------------------------------------------------

# KEYS[1]: the tenant's lease set (member: lease id, score: expiry in ms of Redis time).
# ARGV: limit, lease ms, lease id. Expired leases (a crashed holder) are dropped first.
ACQUIRE_LUA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

RUNNING_LUA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now_ms, '+inf')
"""

_redis_lock = threading.Lock()
_redis: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """One client (and connection pool) per process for settings.REDIS_URL.

    The embedded Redis is named `redis+socket://PATH` (Celery's spelling); redis-py wants a
    unix socket path for it.
    """
    global _redis
    if _redis is None:
        with _redis_lock:
            if _redis is None:
                url = settings.REDIS_URL
                # Redis down is a prompt 503 (generation slots fail closed), never a hang.
                # redis-py's default retries three times with backoff (3.8 s against a dead
                # socket); one immediate retry on a refused or reset connection still covers a
                # pooled connection that Redis dropped when it restarted, and a timeout is not
                # waited out twice. Every script is idempotent per lease id.
                timeouts = {
                    "socket_timeout": 2,
                    "socket_connect_timeout": 2,
                    "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                }
                if url.startswith("redis+socket://"):
                    path = url.removeprefix("redis+socket://")
                    _redis = redis.Redis(unix_socket_path=path, **timeouts)
                else:
                    _redis = redis.Redis.from_url(url, **timeouts)
    return _redis


def _generations_key(tenant: Tenant) -> str:
    return f"tenantry:generations:{tenant.pk}"


@contextmanager
def generation_slot(*, tenant: Tenant) -> Iterator[str]:
    """Hold one of the tenant's `max_concurrent_generations` slots while the block runs.

    Slots are shared by every process. A lease is short (GENERATION_LEASE_SECONDS) and renewed
    by a thread of the holder every third of it while the block runs, so a long generation
    keeps its slot and a process that dies holding one (`kill -9`, the OOM killer) frees it
    within one lease, not after the longest generation could last. Raises QuotaExceeded (429
    `rate_limited`, `Retry-After: 1`) when every slot is taken. Yields the lease id.
    """
    limit = quota_get(tenant=tenant).max_concurrent_generations
    client = redis_client()
    key = _generations_key(tenant)
    lease = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    lease_ms = max(1000, int(float(settings.GENERATION_LEASE_SECONDS) * 1000))
    if not client.eval(ACQUIRE_LUA, 1, key, limit, lease_ms, lease):
        raise QuotaExceeded(
            429,
            "rate_limited",
            f"The tenant already runs {limit} concurrent generation(s), its limit; retry shortly.",
            {"Retry-After": "1"},
        )
    done = threading.Event()
    renewer = threading.Thread(
        target=_renew_lease,
        args=(client, key, lease, lease_ms, done),
        name=f"lease-{lease[-8:]}",
        daemon=True,
    )
    renewer.start()
    try:
        yield lease
    finally:
        done.set()
        client.zrem(key, lease)


# KEYS[1]: the lease set; ARGV: lease ms, lease id. Only a lease still held is extended (one
# dropped as expired stays dropped: its place may have been given to another).
RENEW_LUA = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    return 0
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


def _renew_lease(client, key: str, lease: str, lease_ms: int, done: threading.Event) -> None:
    while not done.wait(lease_ms / 3000):
        try:
            client.eval(RENEW_LUA, 1, key, lease_ms, lease)
        except redis.RedisError:
            # Redis away for a moment: the next renewal (or the lease's expiry) settles it.
            logger.warning("could not renew generation lease %s", lease, exc_info=True)


def generations_running(*, tenant: Tenant) -> int:
    """Generations of the tenant holding a live lease now (selector)."""
    return int(redis_client().eval(RUNNING_LUA, 1, _generations_key(tenant)))


# --- Documents and stored bytes --------------------------------------------------------------


def storage_admit(
    *, tenant: Tenant, quota: TenantQuota, size_bytes: int, replacing_bytes: int = 0
) -> None:
    """Refuse a document the tenant has no room for; call it inside `tenant_context(tenant)`
    just before the document is stored, in the same transaction.

    `quota` comes from `quota_get`, called *before* the tenant's transaction opens: it is read
    on the `metering` connection, and a request that holds one pooled connection in a
    transaction while it waits for a second one deadlocks a small pool (PgBouncer with a pool
    of 2 under concurrent uploads: every server connection held by a request waiting for
    another).

    `replacing_bytes` is the size of the document being replaced (a replacement adds no
    document, and only its growth counts against the bytes). Raises QuotaExceeded: 413
    `storage_quota_exceeded` for bytes, 429 `quota_exceeded` for the document count.

    A transaction-scoped advisory lock per tenant makes check-then-store atomic: a concurrent
    upload of the same tenant waits until this transaction ends, then counts what it stored.
    """
    binding = current_binding()
    alias = data_alias()
    if binding is None or binding.tenant_id != tenant.pk or not connections[alias].in_atomic_block:
        raise RuntimeError("storage_admit must run inside tenant_context(tenant).")
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_storage_lock_key(tenant)])
    stored = data_plane().stored()
    stored_after = stored.bytes - replacing_bytes + size_bytes
    if size_bytes > replacing_bytes and stored_after > quota.max_storage_bytes:
        raise QuotaExceeded(
            413,
            "storage_quota_exceeded",
            f"Storing this document ({size_bytes} bytes) would bring the tenant to "
            f"{stored_after} bytes, over its quota of {quota.max_storage_bytes} bytes.",
        )
    if not replacing_bytes and stored.documents + 1 > quota.max_documents:
        raise QuotaExceeded(
            429,
            "quota_exceeded",
            f"The tenant has {stored.documents} documents and its quota is "
            f"{quota.max_documents}; delete some or raise the quota.",
        )


def _storage_lock_key(tenant: Tenant) -> int:
    digest = hashlib.blake2b(f"tenantry-storage:{tenant.pk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
