"""The data plane as the kernel sees it: declared by an app, never imported.

Dependencies point one way (kernel <- data plane <- interfaces), yet the control plane needs a
few facts about the tenants' data: which app's models follow the tenant context, which
migrations bridge schemas and silos get, what a tenant stores (for quotas and usage), and how
to lock a pool tenant's rows before deleting them. The app that holds tenant data says so on
its AppConfig (`data_plane = True`) and answers those questions there (see `DataPlane`);
the kernel asks through this module and never names that app.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Protocol

from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Stored:
    """What the bound tenant stores: counted against `max_documents` and `max_storage_bytes`."""

    documents: int
    bytes: int
    chunks: int = 0  # counted only when asked


class DataPlane(Protocol):
    """What the data-plane AppConfig provides besides `data_plane = True`."""

    label: str
    # Model names: tables searches and answers write (a move never refuses their writes), and
    # tables kept by the data plane's own triggers (a move re-copies them whole).
    written_by_reads: tuple[str, ...]
    derived: tuple[str, ...]

    def stored(self, *, chunks: bool = False) -> Stored:
        """Documents and their bytes in the bound tenant's store (call inside its context);
        its chunks too if `chunks`."""

    def lock_pool_rows(self, cursor, tenant_id) -> None:
        """Lock the tenant's rows that all others hang from (`FOR UPDATE` on `cursor`), so a
        worker cannot add children while the tenant's pool rows are deleted."""


@cache
def data_plane() -> DataPlane:
    """The one installed app that declares `data_plane = True`."""
    found: list[AppConfig] = [c for c in apps.get_app_configs() if getattr(c, "data_plane", False)]
    if len(found) != 1:
        names = ", ".join(c.label for c in found) or "none"
        raise ImproperlyConfigured(
            f"Exactly one installed app must declare data_plane = True on its AppConfig "
            f"(found: {names})."
        )
    return found[0]


def data_plane_label() -> str:
    return data_plane().label
