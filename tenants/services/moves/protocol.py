"""A live move, phase by phase: prepare -> copy -> catch up (then compare both ends in
full, leaving aside the rows still to apply) -> fence (apply the last changes, compare the
rows they touched, switch) -> clean up.

Each phase is recorded on the TenantMove row before it starts and can be run again: a run
killed anywhere (kill -9 included) is picked up by the next `tenant_move` (or the console):

- prepare, copy: repeated from the start (the target's rows are deleted first; the changes
  captured meanwhile are kept and replayed, which is harmless).
- catch up: continues, and compares in full again.
- fence: a killed run's advisory lock died with its connection, so writes flow again; a
  "moved" mark it may have left in the source is removed and the catch-up goes on (the
  full comparison is redone: the rows the killed fence applied were known only to it).
- the switch is one transaction of the control plane: done or not.
- clean up: repeated until done (every step is IF EXISTS).

Before the switch a move can be cancelled, or is rolled back when verification finds a
difference: the capture goes, the target placement (or the target pool's rows) is dropped,
and the tenant never left its source. After the switch only the clean-up is left.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import sql

from ... import placement
from ...models import IsolationMode, MovePhase, MoveState, Tenant, TenantMove
from ..databases import database_create, database_exists
from ..dataplane import dataplane_migrate
from ..provisioning import placement_drop, pool_rows_delete
from . import capture, copying, endpoints
from .tables import move_tables

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 5000
HEARTBEAT_SECONDS = 2.0


class MoveFailed(Exception):
    """The move could not go on; before the switch it was rolled back."""


class MoveBusy(Exception):
    """Another live runner is working on this move."""


Progress = Callable[[TenantMove], None]


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def move_run(move: TenantMove, *, progress: Progress | None = None) -> TenantMove:
    """Run (or resume) `move` until it is done, kept (switched, source kept), cancelled or
    failed. Raises MoveBusy if a live runner has it."""
    me = runner_id()
    _claim(move, me)
    beat = _Heartbeat(move.pk, me)
    beat.start()
    report = progress or (lambda m: None)
    try:
        while move.state == MoveState.RUNNING:
            move.refresh_from_db()
            if move.cancel_requested and move.phase not in (MovePhase.CLEANUP, MovePhase.DONE):
                _rollback(move, MoveState.CANCELLED, "cancelled")
                break
            report(move)
            _pause_point(move, move.phase)
            step = _PHASES[move.phase]
            step(move, report)
        report(move)
        return move
    finally:
        beat.stop()
        TenantMove.objects.filter(pk=move.pk, runner=me).update(runner="")


def move_rollback(move: TenantMove, *, state: str = MoveState.CANCELLED, why: str = "") -> None:
    """Undo a move that has not switched (no live runner may hold it)."""
    _claim(move, runner_id())
    try:
        _rollback(move, state, why or "cancelled")
    finally:
        TenantMove.objects.filter(pk=move.pk).update(runner="")


def move_abandon(move: TenantMove) -> None:
    """For deleting the tenant: remove whichever end of an unfinished move the tenant does not
    live in (the target before the switch, the source after it) and the capture, so nothing is
    left behind. The tenant's current placement is left to the delete."""
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    with endpoints.connect(source) as src:
        capture.capture_remove(src, move)
    _drop(target if move.phase not in (MovePhase.CLEANUP, MovePhase.DONE) else source)
    TenantMove.objects.filter(pk=move.pk).update(
        state=MoveState.CANCELLED, error="the tenant was deleted", finished_at=timezone.now()
    )


def move_finish(move: TenantMove, *, progress: Progress | None = None) -> TenantMove:
    """Drop the source a `--keep-source` move kept."""
    TenantMove.objects.filter(pk=move.pk, state=MoveState.KEPT).update(state=MoveState.RUNNING)
    move.refresh_from_db()
    return move_run(move, progress=progress)


# --- phases ----------------------------------------------------------------------------------


def _prepare(move: TenantMove, report: Progress) -> None:
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    _create_target(target)
    dataplane_migrate(tenant=target)
    with endpoints.connect(source) as conn:
        capture.capture_install(conn, move, endpoints.schema_of(source))
    if not endpoints.shares_tables(target):
        with endpoints.connect(target) as conn:
            dropped = copying.indexes_take_off(conn, endpoints.schema_of(target))
        known = move.progress.get("indexes", [])
        _save(move, indexes=known + [d for d in dropped if d not in known])
    _advance(move, MovePhase.COPY)


def _copy(move: TenantMove, report: Progress) -> None:
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    started = time.monotonic()
    tables: dict = {}

    def on_table(table, rows):
        tables[table.name] = {"copied": rows}
        _save(move, tables=dict(tables))
        report(move)

    with endpoints.connect(source) as src, endpoints.connect(target) as dst:
        own = not endpoints.shares_tables(target)
        copying.bulk_copy(src, dst, on_table=on_table, own=own)
        copied_s = time.monotonic() - started
        if move.progress.get("indexes"):
            _save(move, building_indexes=True)
            report(move)
            copying.indexes_put_back(dst, move.progress["indexes"])
    _save(
        move,
        copy_seconds=round(copied_s, 3),
        index_seconds=round(time.monotonic() - started - copied_s, 3),
        building_indexes=False,
    )
    _advance(move, MovePhase.CATCH_UP)


def _catch_up(move: TenantMove, report: Progress) -> None:
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    with endpoints.connect(source) as src, endpoints.connect(target) as dst:
        while True:
            pending = capture.changes_pending(src, move)
            _save(move, pending=pending)
            report(move)
            if pending <= settings.MOVE_FENCE_BACKLOG_ROWS:
                break
            _apply_batch(src, dst, move)
            move.refresh_from_db(fields=["cancel_requested"])
            if move.cancel_requested:
                return
        started = time.monotonic()
        statement, params = capture.pending_query(move)
        differ, pending = copying.preverify(src, dst, statement, params)
        _save(move, preverify_ms=int((time.monotonic() - started) * 1000))
    if differ:
        _rollback(move, MoveState.FAILED, f"verification failed for {', '.join(differ)}")
        return
    # Kept on this object only: a run that did not make this comparison itself (a resumed
    # one) goes through the catch-up again before it fences.
    move._preverified = pending
    _advance(move, MovePhase.FENCE)


def _fence(move: TenantMove, report: Progress) -> None:
    """Hold writes, apply what is left, verify, switch, and let writes go to the target."""
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    keys = getattr(move, "_preverified", None)
    if keys is None:
        _advance(move, MovePhase.CATCH_UP)  # resumed: compare in full again first
        return
    del move._preverified
    keys = {name: list(pks) for name, pks in keys.items()}
    with (
        endpoints.connect(source) as lock,
        endpoints.connect(source) as src,
        endpoints.connect(target) as dst,
    ):
        capture.fence_open(src, move)  # a mark left by a killed run that had not switched
        started = time.monotonic()
        if not capture.fence_take(lock, move, settings.MOVE_FENCE_MAX_SECONDS):
            _advance(move, MovePhase.CATCH_UP)
            return
        try:
            # Fenced writes cannot arrive now; what searches write still may, and waits for
            # the late apply after the switch.
            while True:
                applied, fenced = _apply_batch(src, dst, move, keys=keys)
                if not fenced and applied < CATCH_UP_BATCH:
                    break
            applied_at = time.monotonic()
            differ = copying.verify_keys(src, dst, keys)
            figures = {name: len(pks) for name, pks in keys.items()}
            _save(
                move,
                fence_apply_ms=int((applied_at - started) * 1000),
                fence_verify_ms=int((time.monotonic() - applied_at) * 1000),
            )
            if differ:
                raise MoveFailed(f"verification failed for {', '.join(differ)}")
            capture.fence_close(src, move)
            _pause_point(move, "switch")
            _switch(move, figures)
        except MoveFailed as exc:
            capture.fence_release(lock, move)
            _rollback(move, MoveState.FAILED, str(exc))
            return
        except BaseException:
            _unmark_unless_switched(move, src)
            raise
        held_ms = int((time.monotonic() - started) * 1000)
        capture.fence_release(lock, move)
        TenantMove.objects.filter(pk=move.pk).update(fence_ms=held_ms)
        move.fence_ms = held_ms


def _unmark_unless_switched(move: TenantMove, src) -> None:
    """After an error inside the fence: if the switch did not commit, let the source take
    writes again at once instead of refusing them until the move is run again."""
    try:
        version = Tenant.objects.values_list("placement_version", flat=True).get(pk=move.tenant_id)
        if version == move.source_version:
            capture.fence_open(src, move)
    except Exception:
        logger.exception("move %s: could not lift the moved mark; run the move again", move.pk)


def _switch(move: TenantMove, figures: dict) -> None:
    target = endpoints.target_of(move)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=move.tenant_id)
        tenant.isolation_mode = target.isolation_mode
        tenant.server = target.server
        tenant.silo_database = target.silo_database
        tenant.silo_dsn = ""
        tenant.placement_version = target.placement_version
        tenant.save()
        _save(move, verified=figures, switched_at=time.time())
        _advance(move, MovePhase.CLEANUP)


def _cleanup(move: TenantMove, report: Progress) -> None:
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    wait = move.progress.get("switched_at", 0) + settings.MOVE_DRAIN_SECONDS - time.time()
    if wait > 0:
        time.sleep(wait)  # requests that resolved the old placement just before the switch
    with endpoints.connect(source) as src, endpoints.connect(target) as dst:
        # What searches and answers wrote to the source during the fence and the drain.
        while _apply_batch(src, dst, move, late=True)[0]:
            pass
    if move.keep_source and move.state != MoveState.KEPT and not move.progress.get("finish"):
        _save(move, finish=True)
        TenantMove.objects.filter(pk=move.pk).update(state=MoveState.KEPT)
        move.state = MoveState.KEPT
        return
    with endpoints.connect(source) as src:
        capture.capture_remove(src, move)
    _drop(source)
    move.phase = MovePhase.DONE
    move.state = MoveState.DONE
    move.finished_at = timezone.now()
    move.save(update_fields=["phase", "state", "finished_at", "updated_at"])


_PHASES = {
    MovePhase.PREPARE: _prepare,
    MovePhase.COPY: _copy,
    MovePhase.CATCH_UP: _catch_up,
    MovePhase.FENCE: _fence,
    MovePhase.CLEANUP: _cleanup,
}


# --- helpers ---------------------------------------------------------------------------------


def _apply_batch(src, dst, move: TenantMove, *, late=False, keys=None) -> tuple[int, int]:
    """Apply one batch of captured changes; returns (changes, of which to fenced tables).
    `keys` collects the fenced tables' applied keys (the fence compares those rows)."""
    changes = capture.changes_take(src, move, CATCH_UP_BATCH)
    if not changes:
        return 0, 0
    by_reads = {t.name for t in move_tables() if t.written_by_reads}
    derived = {t.name for t in move_tables() if t.derived}
    if keys is not None:
        for _, name, pk in changes:
            if name not in by_reads and name not in derived:
                keys.setdefault(name, []).append(pk)
    fenced = sum(1 for _, name, _ in changes if name not in by_reads)
    if late:
        _, ignored = copying.apply_late(src, dst, changes)
        if ignored:
            logger.error("move %s: %s fenced changes after the switch ignored", move.pk, ignored)
    else:
        copying.apply_changes(src, dst, changes)
    capture.changes_done(src, [seq for seq, _, _ in changes])
    _save(move, applied=move.progress.get("applied", 0) + len(changes))
    return len(changes), fenced


def _create_target(target: Tenant) -> None:
    """The target's schema or database, if a killed run did not make it already."""
    if target.isolation_mode == IsolationMode.BRIDGE:
        alias = placement.shared_owner_alias(target)
        with connections[alias].cursor() as cursor:
            cursor.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                .format(sql.Identifier(target.schema_name))
                .as_string(cursor.connection)
            )
    elif target.isolation_mode == IsolationMode.SILO:
        cfg = placement.server_owner_settings(target)
        if not database_exists(cfg, target.silo_database):
            database_create(cfg, target.silo_database)


def _drop(end: Tenant) -> None:
    if endpoints.shares_tables(end):
        pool_rows_delete(end)
    else:
        placement_drop(end)


def _rollback(move: TenantMove, state: str, why: str) -> None:
    source, target = endpoints.source_of(move), endpoints.target_of(move)
    with endpoints.connect(source) as src:
        capture.capture_remove(src, move)
    _drop(target)
    TenantMove.objects.filter(pk=move.pk).update(
        state=state, error=why[:2000], finished_at=timezone.now()
    )
    move.refresh_from_db()


def _advance(move: TenantMove, phase: str) -> None:
    TenantMove.objects.filter(pk=move.pk).update(phase=phase, updated_at=timezone.now())
    move.phase = phase


def _save(move: TenantMove, **values) -> None:
    """Merge `values` into the move's progress, in the database too (one UPDATE)."""
    move.progress = {**move.progress, **values}
    TenantMove.objects.filter(pk=move.pk).update(progress=move.progress, updated_at=timezone.now())


def _claim(move: TenantMove, me: str) -> None:
    stale = timezone.now() - timezone.timedelta(seconds=settings.MOVE_RUNNER_TIMEOUT_SECONDS)
    claimed = (
        TenantMove.objects.filter(pk=move.pk)
        .filter(Q(runner="") | Q(runner=me) | Q(heartbeat_at__lt=stale))
        .update(runner=me, heartbeat_at=timezone.now())
    )
    if not claimed:
        raise MoveBusy(
            f"The move of this tenant is being run by {move.runner or 'another runner'}."
        )
    move.refresh_from_db()


def _pause_point(move: TenantMove, point: str) -> None:
    """Tests only (MOVE_PAUSE_AT=<phase>, or `switch`: in the fence, writes held and the source
    marked moved, just before the switch): stop there, recorded, until killed."""
    if point == settings.MOVE_PAUSE_AT:
        TenantMove.objects.filter(pk=move.pk).update(error=f"paused at {point}")
        while True:
            time.sleep(0.1)


class _Heartbeat:
    """Tells other runners this one is alive while a phase runs for minutes (the copy)."""

    def __init__(self, move_id, me: str):
        self.move_id, self.me = move_id, me
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="move-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                TenantMove.objects.filter(pk=self.move_id, runner=self.me).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()
            close_old_connections()
