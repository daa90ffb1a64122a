"""Token budgets: prompt + generated tokens per model, per fixed hour and per fixed UTC day.

A tenant's budgets (TenantQuota.tokens_per_hour / tokens_per_day) apply to each model it uses;
a key with budgets of its own (ApiKey.tokens_per_hour / tokens_per_day) is held to them as well.
An answer reserves what it may use before it generates (its prompt plus `max_tokens`) in every
window that applies, all or none, and hands back what it did not use when it ends
(`Reservation.refund`). Reserving up front is what keeps the budget exact: concurrent answers
of one tenant can never together spend more than it, whatever they end up generating.

The counters are TokenCounter rows on the metering connection, taken with the same conditional
upsert as the request quotas (tenants.services.quotas), one per window inside one transaction:
the row locks PostgreSQL takes on conflict serialise concurrent reservations, and a window that
cannot take the tokens rolls back the others. Windows are always locked in the same order
(tenant before key, hour before day), so two reservations never wait on each other in a cycle.

A refusal is 429 `token_budget_exhausted`, distinct from `rate_limited`: retrying is pointless
until the exhausted window turns, which `Retry-After` (and the body's `retry_after`) says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connections, transaction

from ..models import ApiKey, Tenant, TokenCounter, TokenPeriod
from .quotas import METERING_DB, NOW_SQL, QuotaExceeded, clock_params, quota_get

CODE = "token_budget_exhausted"
PERIODS = (TokenPeriod.HOUR.value, TokenPeriod.DAY.value)
PERIOD_SECONDS = {"hour": 3600, "day": 86400}
_PERIOD_LABEL = {"hour": "hour", "day": "day (UTC)"}

# The start of the current hour or UTC day by the quota clock (%(period)s is 'hour' or 'day').
PERIOD_START_SQL = f"date_trunc(%(period)s, {NOW_SQL}, 'UTC')"

# One window: take `tokens` if they fit under `limit`. Returns the window's tokens after the
# reservation (NULL: refused, nothing written), its start, and the seconds until it turns.
# On conflict the row is locked (also when the WHERE refuses), and the WHERE sees its latest
# version, so concurrent reservations are admitted one after another.
RESERVE_SQL = f"""
WITH current_window AS (SELECT {PERIOD_START_SQL} AS start),
reserved AS (
    INSERT INTO tenants_tokencounter AS counter
        (tenant_id, api_key_id, model, period, window_start, tokens)
    SELECT %(tenant_id)s, %(api_key_id)s, %(model)s, %(period)s, current_window.start, %(tokens)s
    FROM current_window
    WHERE %(tokens)s <= %(limit)s
    ON CONFLICT ON CONSTRAINT token_counter_unique_window
    DO UPDATE SET tokens = counter.tokens + EXCLUDED.tokens
    WHERE counter.tokens + EXCLUDED.tokens <= %(limit)s
    RETURNING counter.tokens
)
SELECT
    (SELECT tokens FROM reserved),
    current_window.start,
    greatest(1, ceil(extract(epoch FROM
        current_window.start + ('1 ' || %(period)s)::interval - {NOW_SQL})))::int
FROM current_window
"""  # noqa: S608 - only the constant clock expressions are formatted in

USED_SQL = """
SELECT coalesce(max(tokens), 0) FROM tenants_tokencounter
WHERE tenant_id = %(tenant_id)s AND api_key_id IS NOT DISTINCT FROM %(api_key_id)s
  AND model = %(model)s AND period = %(period)s AND window_start = %(window_start)s
"""

# Never below zero: a refund can only give back what its own reservation took.
REFUND_SQL = """
UPDATE tenants_tokencounter SET tokens = greatest(0, tokens - %(tokens)s)
WHERE tenant_id = %(tenant_id)s AND api_key_id IS NOT DISTINCT FROM %(api_key_id)s
  AND model = %(model)s AND period = %(period)s AND window_start = %(window_start)s
"""

WINDOWS_SQL = f"""
SELECT date_trunc('hour', {NOW_SQL}, 'UTC'), date_trunc('day', {NOW_SQL}, 'UTC'), {NOW_SQL}
"""

PRUNE_SQL = """
DELETE FROM tenants_tokencounter
WHERE tenant_id = %(tenant_id)s AND api_key_id IS NOT DISTINCT FROM %(api_key_id)s
  AND model = %(model)s AND period = %(period)s AND window_start < %(window_start)s
"""


@dataclass(frozen=True)
class Budget:
    """One window a reservation must fit in: the tenant's (api_key_id None) or a key's."""

    api_key_id: object | None
    period: str
    limit: int

    @property
    def scope(self) -> str:
        return "tenant" if self.api_key_id is None else "api_key"

    @property
    def policy(self) -> str:
        """Its name in the RateLimit headers."""
        return f"{'key-' if self.api_key_id else ''}tokens-{self.period}"


@dataclass
class Reservation:
    """Tokens taken from each window of `windows` ((budget, window start) pairs) for one
    answer. `refund(used_tokens)` gives back the part not used, once."""

    tenant_id: object
    model: str
    tokens: int
    windows: list[tuple[Budget, datetime]]
    refunded: bool = field(default=False)

    def refund(self, used_tokens: int) -> int:
        """Give back `tokens - used_tokens` (never less than 0) to every window; returns how
        many tokens went back. Idempotent: a second call gives back nothing."""
        if not isinstance(used_tokens, int) or isinstance(used_tokens, bool) or used_tokens < 0:
            raise ValueError(f"used_tokens must be a non-negative integer, not {used_tokens!r}.")
        if self.refunded:
            return 0
        back = max(0, self.tokens - used_tokens)
        if back:
            # One transaction, windows in reservation order: all or none, and no lock cycle
            # with a reservation running at the same time.
            atomic = transaction.atomic(using=METERING_DB)
            with atomic, connections[METERING_DB].cursor() as cursor:
                for budget, window_start in self.windows:
                    cursor.execute(REFUND_SQL, self._row(budget, window_start, tokens=back))
        self.refunded = True
        return back

    def _row(self, budget: Budget, window_start: datetime, **extra) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "api_key_id": budget.api_key_id,
            "model": self.model,
            "period": budget.period,
            "window_start": window_start,
            **extra,
        }


def token_budgets(*, tenant: Tenant, api_key: ApiKey | None) -> list[Budget]:
    """The windows an answer of `tenant` through `api_key` must fit in, in locking order."""
    quota = quota_get(tenant=tenant)
    budgets = [Budget(None, period, getattr(quota, f"tokens_per_{period}")) for period in PERIODS]
    if api_key is not None:
        for period in PERIODS:
            limit = getattr(api_key, f"tokens_per_{period}", None)
            if limit is not None:
                budgets.append(Budget(api_key.pk, period, limit))
    return budgets


def token_budget_reserve(
    *, tenant: Tenant, api_key: ApiKey | None, model: str, tokens: int
) -> Reservation:
    """Reserve `tokens` (the prompt's plus `max_tokens`) of `model` in the tenant's hour and
    day windows and in the key's (if it has budgets), all or none, or raise QuotaExceeded
    (429 `token_budget_exhausted`, `Retry-After`: until the exhausted window turns)."""
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, not {tokens!r}.")
    budgets = token_budgets(tenant=tenant, api_key=api_key)
    outcomes = []  # (budget, tokens after or None, window start, seconds to reset)
    with transaction.atomic(using=METERING_DB), connections[METERING_DB].cursor() as cursor:
        for budget in budgets:
            cursor.execute(
                RESERVE_SQL,
                {
                    "tenant_id": tenant.pk,
                    "api_key_id": budget.api_key_id,
                    "model": model,
                    "period": budget.period,
                    "tokens": tokens,
                    "limit": budget.limit,
                    **clock_params(),
                },
            )
            outcomes.append((budget, *cursor.fetchone()))
        refused = [o for o in outcomes if o[1] is None]
        if refused:
            # What the refused windows hold, read under the locks just taken; then the
            # windows that did take the tokens are rolled back.
            exhausted = []
            for budget, _, window_start, reset in refused:
                row = {
                    "tenant_id": tenant.pk,
                    "api_key_id": budget.api_key_id,
                    "model": model,
                    "period": budget.period,
                    "window_start": window_start,
                }
                cursor.execute(USED_SQL, row)
                exhausted.append((budget, cursor.fetchone()[0], reset))
            transaction.set_rollback(True, using=METERING_DB)
    if refused:
        raise _refusal(model=model, tokens=tokens, exhausted=exhausted)
    reservation = Reservation(
        tenant_id=tenant.pk,
        model=model,
        tokens=tokens,
        windows=[(budget, start) for budget, _, start, _ in outcomes],
    )
    _prune(reservation, [o for o in outcomes if o[1] == tokens])
    return reservation


def _prune(reservation: Reservation, opened: list) -> None:
    """A window that this reservation opened: its predecessors are no longer needed."""
    if not opened:
        return
    with connections[METERING_DB].cursor() as cursor:
        for budget, _, window_start, _ in opened:
            cursor.execute(PRUNE_SQL, reservation._row(budget, window_start))


def _refusal(*, model: str, tokens: int, exhausted: list[tuple[Budget, int, int]]):
    # Retryable only once every exhausted window has turned: the latest of them.
    budget, used, reset = max(exhausted, key=lambda e: e[2])
    whose = "tenant's" if budget.scope == "tenant" else "API key's"
    per = _PERIOD_LABEL[budget.period]
    if tokens > budget.limit:
        detail = (
            f"This answer needs up to {tokens} tokens of {model} (its prompt plus max_tokens), "
            f"more than the {whose} budget of {budget.limit} per {per}; lower max_tokens or k."
        )
    else:
        detail = (
            f"The {whose} budget of {budget.limit} {model} tokens per {per} has "
            f"{max(0, budget.limit - used)} left and this answer needs up to {tokens} (its "
            f"prompt plus max_tokens). Not retryable until the window turns, in {reset} s."
        )
    headers = {
        "Retry-After": str(reset),
        "RateLimit-Policy": ", ".join(
            f'"{b.policy}";q={b.limit};w={PERIOD_SECONDS[b.period]}' for b, _, _ in exhausted
        ),
        "RateLimit": ", ".join(
            f'"{b.policy}";r={max(0, b.limit - u)};t={r}' for b, u, r in exhausted
        ),
        # OpenAI's SDKs honour it: retrying at once cannot succeed.
        "x-should-retry": "false",
    }
    extra = {
        "retry_after": reset,
        "retryable": False,
        "budget": {
            "scope": budget.scope,
            "period": budget.period,
            "model": model,
            "limit": budget.limit,
            "remaining": max(0, budget.limit - used),
            "requested": tokens,
        },
    }
    return QuotaExceeded(429, CODE, detail, headers, extra=extra)


def token_budget_usage(*, tenant: Tenant, api_key: ApiKey | None = None) -> dict:
    """Tokens reserved or used in the current hour and UTC day, per model, against the
    budgets (selector): the tenant's, or with `api_key` that key's (a limit of None: the key
    has no budget of its own). A model appears once it has been used in a current window."""
    quota = quota_get(tenant=tenant)
    owner = quota if api_key is None else api_key
    limits = {period: getattr(owner, f"tokens_per_{period}") for period in PERIODS}
    with connections[METERING_DB].cursor() as cursor:
        cursor.execute(WINDOWS_SQL, clock_params())
        hour_start, day_start, now = cursor.fetchone()
    starts = {"hour": hour_start, "day": day_start}
    counters = TokenCounter.objects.using(METERING_DB).filter(
        tenant_id=tenant.pk, api_key_id=getattr(api_key, "pk", None)
    )
    used: dict[str, dict[str, int]] = {}
    for period in PERIODS:
        current = counters.filter(period=period, window_start=starts[period])
        for model, tokens in current.values_list("model", "tokens"):
            used.setdefault(model, dict.fromkeys(PERIODS, 0))[period] = tokens

    def window(period: str, tokens: int) -> dict:
        limit = limits[period]
        return {
            "used": tokens,
            "limit": limit,
            "remaining": None if limit is None else max(0, limit - tokens),
            "reset": starts[period] + timedelta(seconds=PERIOD_SECONDS[period]),
        }

    return {
        "as_of": now,
        "tokens_per_hour": limits["hour"],
        "tokens_per_day": limits["day"],
        "hour_reset": starts["hour"] + timedelta(seconds=PERIOD_SECONDS["hour"]),
        "day_reset": starts["day"] + timedelta(seconds=PERIOD_SECONDS["day"]),
        "models": [
            {"model": model, **{period: window(period, counts[period]) for period in PERIODS}}
            for model, counts in sorted(used.items())
        ],
    }
