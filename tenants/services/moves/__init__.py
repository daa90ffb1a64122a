"""Live tenant moves between pool, bridge and silo, and between data-plane servers.

`move_start` records a move; `move_run` runs it (or resumes one a killed run left), phase
by phase (protocol.py); `move_cancel` asks a running move to roll back, or rolls back one
nobody runs; `move_finish` drops a source kept with `keep_source`. The command
`tenant_move`, the console and the Celery task `tenants.tasks.tenant_move_run` all go
through these. docs/architecture.md, "Moving a tenant", has the protocol and its guarantees.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ...models import (
    ACTIVE_MOVE_STATES,
    IsolationMode,
    MovePhase,
    MoveState,
    Tenant,
    TenantMove,
    TenantStatus,
)
from ..servers import server_resolve
from .protocol import MoveBusy, MoveFailed, move_finish, move_rollback, move_run


class MoveRefused(Exception):
    """The move cannot start (or be changed) as asked; nothing was changed."""


def move_start(
    *, tenant: Tenant, to: str, server: str | None = None, keep_source: bool = False
) -> TenantMove:
    """Record a move of `tenant` to mode `to` on `server` (a registered server's name, or
    "default"/None for the platform database). Raises MoveRefused if it is already there, is
    still being provisioned, or has a move under way."""
    if to not in IsolationMode.values:
        raise MoveRefused(f"Unknown mode {to!r}: choose pool, bridge or silo.")
    if tenant.status == TenantStatus.PROVISIONING:
        raise MoveRefused(f"Tenant {tenant.slug!r} is still being provisioned.")
    target_server = server_resolve(server)
    same_server = (tenant.server_id == (target_server.pk if target_server else None)) and (
        not tenant.silo_dsn
    )
    if to == tenant.isolation_mode and same_server:
        raise MoveRefused(f"Tenant {tenant.slug!r} is already {to} on {tenant.server_name}.")
    version = tenant.placement_version
    try:
        with transaction.atomic():
            return TenantMove.objects.create(
                tenant=tenant,
                source_mode=tenant.isolation_mode,
                source_server=tenant.server,
                source_database=tenant.silo_database,
                source_dsn=tenant.silo_dsn,
                source_version=version,
                target_mode=to,
                target_server=target_server,
                # Named with the version: a silo moving to another silo may share a server
                # (a DSN-given one and a registered one can be the same machine).
                target_database=f"tenant_{tenant.id.hex}_{version + 1}" if to == "silo" else "",
                keep_source=keep_source,
            )
    except IntegrityError as exc:
        raise MoveRefused(f"Tenant {tenant.slug!r} has a move under way.") from exc


def move_active(*, tenant: Tenant) -> TenantMove | None:
    return TenantMove.objects.filter(tenant=tenant, state__in=ACTIVE_MOVE_STATES).first()


def move_list(*, tenant: Tenant, limit: int = 10) -> list[TenantMove]:
    return list(
        TenantMove.objects.filter(tenant=tenant).select_related("source_server", "target_server")[
            :limit
        ]
    )


def move_runner_alive(move: TenantMove) -> bool:
    if not move.runner or move.heartbeat_at is None:
        return False
    age = (timezone.now() - move.heartbeat_at).total_seconds()
    return age < settings.MOVE_RUNNER_TIMEOUT_SECONDS


def move_cancel(*, move: TenantMove) -> TenantMove:
    """Roll back a move that has not switched: a live runner is asked to (it stops at its next
    step); one nobody runs is rolled back here."""
    if move.phase in (MovePhase.CLEANUP, MovePhase.DONE) or not move.is_active:
        raise MoveRefused("The move has switched already: only its clean-up is left.")
    TenantMove.objects.filter(pk=move.pk).update(cancel_requested=True)
    move.refresh_from_db()
    if not move_runner_alive(move):
        move_rollback(move, state=MoveState.CANCELLED, why="cancelled")
        move.refresh_from_db()
    return move


__all__ = [
    "MoveBusy",
    "MoveFailed",
    "MoveRefused",
    "move_active",
    "move_cancel",
    "move_finish",
    "move_list",
    "move_rollback",
    "move_run",
    "move_runner_alive",
    "move_start",
]
