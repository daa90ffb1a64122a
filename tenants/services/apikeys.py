"""API keys: issue, authenticate, revoke.

A key reads `tnt_<12 hex>_<secret>`. The first 16 characters are a public prefix, stored in
clear to find the row and to show in lists; the whole key is stored only as a SHA-256 hash.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import connections, router
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from ..after_response import after_response
from ..models import ApiKey, ApiKeyScope, DataServer, Tenant

KEY_PREFIX = "tnt_"
PREFIX_LENGTH = len(KEY_PREFIX) + 12


class ApiKeyError(Exception):
    """Authentication failed; `code` is the stable machine-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and len(value) > PREFIX_LENGTH


def apikey_create(
    *,
    tenant: Tenant,
    scopes: list[str],
    expires_in_days: int | None = None,
    name: str = "",
    tokens_per_hour: int | None = None,
    tokens_per_day: int | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key and return it with its plaintext, which is never available again.

    `tokens_per_hour` / `tokens_per_day`: the key's own token budgets (per model), held on top
    of the tenant's; None: only the tenant's apply."""
    unknown = set(scopes) - set(ApiKeyScope.values)
    if not scopes or unknown:
        raise ValueError(f"Scopes must be a non-empty subset of {sorted(ApiKeyScope.values)}.")
    if expires_in_days is not None and expires_in_days <= 0:
        raise ValueError("expires_in_days must be positive.")
    budgets = {"tokens_per_hour": tokens_per_hour, "tokens_per_day": tokens_per_day}
    for budget, value in budgets.items():
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63
        ):
            raise ValueError(f"{budget} must be a positive integer or empty, not {value!r}.")
    prefix = KEY_PREFIX + secrets.token_hex(6)
    raw = f"{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=prefix,
        secret_hash=hash_key(raw),
        scopes=sorted(set(scopes)),
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
        **budgets,
    )
    return key, raw


def apikey_authenticate(*, raw: str) -> ApiKey:
    """The live key for `raw`, or ApiKeyError. Touches last_used_at at most once a minute
    (API_KEY_LAST_USED_RESOLUTION_SECONDS), after the response."""
    key = key_by_prefix(raw[:PREFIX_LENGTH]) if looks_like_key(raw) else None
    if key is None or not hmac.compare_digest(key.secret_hash, hash_key(raw)):
        raise ApiKeyError("invalid_api_key", "The API key is not valid.")
    state = key.state()
    if state == "revoked":
        raise ApiKeyError("api_key_revoked", "The API key has been revoked.")
    if state == "expired":
        raise ApiKeyError("api_key_expired", "The API key has expired.")
    _touch(key)
    return key


# The key, its tenant and the tenant's server (NULL: the platform's own), in one statement
# whose text is built once per process: compiling the equivalent select_related query took the
# ORM about as long as PostgreSQL took to answer it, on every request.
_LOOKUP = ((ApiKey, "k"), (Tenant, "t"), (DataServer, "s"))


@functools.cache
def key_lookup_sql() -> str:
    """The statement key_by_prefix sends (one parameter: the prefix)."""
    columns = ", ".join(
        f'{alias}."{field.column}"' for model, alias in _LOOKUP for field in _fields(model)
    )
    key, tenant, server = (model._meta.db_table for model, _ in _LOOKUP)
    return (
        f"SELECT {columns} FROM {key} k JOIN {tenant} t ON t.id = k.tenant_id "  # noqa: S608
        f"LEFT JOIN {server} s ON s.id = t.server_id WHERE k.prefix = %s LIMIT 1"
    )


def _fields(model) -> list:
    return list(model._meta.concrete_fields)


def key_by_prefix(prefix: str) -> ApiKey | None:
    """The key of `prefix` with `.tenant` and `.tenant.server` loaded (as
    select_related("tenant__server") would), or None."""
    alias = router.db_for_read(ApiKey)
    with connections[alias].cursor() as cursor:
        cursor.execute(key_lookup_sql(), [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    loaded, start = [], 0
    for model, _ in _LOOKUP:
        fields = _fields(model)
        values = row[start : start + len(fields)]
        start += len(fields)
        loaded.append(
            None
            if values[0] is None
            else model.from_db(alias, [field.attname for field in fields], values)
        )
    key, tenant, server = loaded
    tenant.server = server
    key.tenant = tenant
    return key


def apikey_revoke(*, prefix_or_id: str, tenant: Tenant | None = None) -> ApiKey:
    """Revoke by public prefix or id. Revoking twice keeps the first revocation time.

    With `tenant`, another tenant's key is indistinguishable from a missing one (DoesNotExist).
    """
    try:
        lookup = Q(pk=UUID(prefix_or_id))
    except ValueError:
        lookup = Q(prefix=prefix_or_id[:PREFIX_LENGTH])
    keys = ApiKey.objects.select_related("tenant")
    key = (keys.filter(tenant=tenant) if tenant is not None else keys).get(lookup)
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=Now())
    key.refresh_from_db()
    return key


def apikey_list(*, tenant: Tenant):
    """A tenant's keys, newest first (selector)."""
    return ApiKey.objects.filter(tenant=tenant).order_by("-created_at")


def _touch(key: ApiKey) -> None:
    # The row just read says whether the touch is due: most requests send nothing. When it is,
    # the UPDATE waits until the response has gone (it changes nothing the caller gets), and
    # stays conditional, since a concurrent request may have touched the key meanwhile.
    stale = timezone.now() - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if key.last_used_at is not None and key.last_used_at >= stale:
        return
    after_response(
        ApiKey.objects.filter(pk=key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale))
        .update,
        last_used_at=Now(),
    )
