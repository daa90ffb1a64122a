"""Celery tasks of the kernel. Thin: they reload rows by id and call services.

Nothing here imports the data plane or a model library: the worker imports this module before
it forks, and the kernel never names the data plane (tests/test_dependency_direction.py).
Callers hand work off by task name (`send_task("tenants.tasks.tenant_move_run", ...)`), never
by import.
"""

from __future__ import annotations

from celery import shared_task

from .models import MoveState, TenantMove
from .services.moves import MoveBusy, move_finish, move_run


@shared_task(acks_late=True, reject_on_worker_lost=True)
def tenant_move_run(move_id: str, finish: bool = False) -> str:
    """Run (or resume) one live move to its end; with `finish`, drop the source a kept move
    kept. Returns the move's state, "busy" or "skipped".

    A repeated run is harmless, so a redelivery (a killed worker, a move that outlasts the
    broker's visibility timeout) needs no guard: every phase is recorded on the move and
    `move_run` resumes at the one it left, a move another live runner holds raises MoveBusy
    (answered "busy", the holder goes on), and a move that is gone or already over is
    skipped. No time limit: a copy takes as long as the tenant is large, and the heartbeat,
    not the task's age, tells a live run from a dead one.
    """
    move = TenantMove.objects.filter(pk=move_id).first()
    if move is None or not move.is_active:
        return "skipped"
    try:
        if finish and move.state == MoveState.KEPT:
            move = move_finish(move)
        elif move.state == MoveState.RUNNING:
            move = move_run(move)
    except MoveBusy:
        return "busy"
    return str(move.state)
