"""One way to visit every tenant: each in its own binding, one failure reported, not fatal.

Why one helper: the periodic sweeps (recovery, retention), the console overview and
`migrate_tenants` all loop over tenants, and each used to repeat the same care (bind, catch,
log, release the silo connection) or forget part of it; recovery stopped at the first
unreachable silo. Here a tenant whose placement cannot be reached is logged and reported, and
the sweep goes on with the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from . import placement
from .context import tenant_context
from .models import Tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What `work` returned for one tenant, or the exception it raised."""

    value: Any = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def report(self) -> Any:
        """The value, or `error: <ExceptionType>` (reasons go to the log, not to reports)."""
        return self.value if self.ok else f"error: {type(self.error).__name__}"


def each_tenant(
    tenants: Iterable[Tenant], work: Callable[[Tenant], Any], *, bind: bool = True
) -> Iterator[tuple[Tenant, Outcome]]:
    """Yield (tenant, outcome of work(tenant)) for each tenant, in its own binding.

    `bind=False` for work on the owner's aliases (migrations, DDL), which binds nothing. Each
    tenant's own connections (its silo database) are closed before the next: a sweep would
    otherwise hold one per silo at once.
    """
    for tenant in tenants:
        try:
            with tenant_context(tenant) if bind else nullcontext():
                outcome = Outcome(value=work(tenant))
        except Exception as exc:
            logger.exception("tenant %s (%s): %s failed", tenant.slug, tenant.isolation_mode, work)
            outcome = Outcome(error=exc)
        finally:
            placement.release(tenant)
        yield tenant, outcome
