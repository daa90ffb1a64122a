"""A tenant's placement (mode, server, version) and its live moves: start one, follow it phase
by phase, cancel it before the switch, finish one that kept its source, run one again that no
worker runs.

The moves services do the work (tenants.services.moves, as `manage.py tenant_move` does); a
Celery worker runs the move, handed `tenants.tasks.tenant_move_run` by name once the request's
transaction commits, as the data plane's handoff does (never importing a task module). The
progress partial polls itself while the move runs; once it stops running it answers with the
whole panel instead, so the placement shown and the form come back up to date.
"""

from __future__ import annotations

import logging

from celery import current_app
from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from tenants.models import DEFAULT_SERVER_NAME, IsolationMode, MovePhase, MoveState, Tenant
from tenants.models import TenantMove as Move
from tenants.services.moves import (
    MoveRefused,
    move_active,
    move_cancel,
    move_list,
    move_runner_alive,
    move_start,
)
from tenants.services.servers import ServerError, server_list

from ..decorators import staff_tenant
from ..htmx import wants_fragment

logger = logging.getLogger(__name__)

TENANT_MOVE_RUN = "tenants.tasks.tenant_move_run"
MOVES_SHOWN = 5
# The phases a move records, in order (the switch is the last step of the fence).
STEPS = [phase for phase in MovePhase.values if phase != MovePhase.SWITCH]


class MoveForm(forms.Form):
    """Where to move the tenant. The servers are the view's (server_list): this form only
    checks that one of them was picked; move_start judges the rest."""

    to = forms.ChoiceField(label="Move to", choices=IsolationMode.choices)
    server = forms.ChoiceField(
        label="Server",
        help_text="“default” is the platform database; others are registered with "
        "manage.py server_add.",
    )
    keep_source = forms.BooleanField(
        label="Keep the source",
        required=False,
        help_text="Switch, but leave the old placement's data in place until “Finish” drops it.",
    )

    def __init__(self, *args, servers: list[tuple[str, str]], **kwargs):
        super().__init__(*args, prefix="move", **kwargs)
        self.fields["server"].choices = servers


@staff_tenant
@require_safe
@vary_on_headers("HX-Request")
def placement(request, tenant):
    """The placement page, or (htmx) its panel: the tenant page loads it into its card."""
    return _render(request, tenant)


@staff_tenant
@require_POST
def move_begin(request, tenant):
    """Start a move with move_start and hand it to a worker; a refusal is a form error."""
    servers = _server_choices()
    form = MoveForm(request.POST, servers=servers)
    if form.is_valid():
        data = form.cleaned_data
        try:
            move = move_start(
                tenant=tenant, to=data["to"], server=data["server"], keep_source=data["keep_source"]
            )
        except (MoveRefused, ServerError) as exc:
            form.add_error(None, str(exc))
        else:
            _enqueue(move)
            if request.htmx:
                return _render(request, tenant, move=move)
            messages.success(request, f"Moving {tenant.slug} to {move.target_mode}.")
            return redirect("console:tenant-placement", slug=tenant.slug)
    return _render(request, tenant, form=form, servers=servers, status=_refused(request, 400))


@staff_tenant
@require_safe
@vary_on_headers("HX-Request")
def move_progress(request, tenant, move_id):
    """One move's progress. It polls itself while the move runs (or, with `finishing`, while
    a finish asked for is still queued); the first answer after that is the whole panel."""
    move = _move(tenant, move_id)
    finishing = request.GET.get("finishing") == "1"
    if not wants_fragment(request):
        return _render(request, tenant, move=move, finishing=finishing)
    progress = _progress(move, finishing=finishing)
    if progress["polling"]:
        context = {"tenant": tenant, "move": move, "progress": progress}
        return render(request, "console/tenants/_move_progress.html", context)
    response = _render(request, tenant, move=move)
    response["HX-Retarget"] = "#placement-panel"
    response["HX-Reswap"] = "outerHTML"
    return response


@staff_tenant
@require_POST
def move_stop(request, tenant, move_id):
    """Cancel before the switch (move_cancel): a running worker rolls back at its next step,
    a move no worker runs is rolled back here."""
    move = _move(tenant, move_id)
    try:
        move = move_cancel(move=move)
    except MoveRefused as exc:
        return _refusal(request, tenant, move, str(exc))
    return _done(request, tenant, move, "Cancelling the move." if move.is_active else None)


@staff_tenant
@require_POST
def move_finish(request, tenant, move_id):
    """Drop a kept source: the worker runs the move's clean-up (move_finish) to the end."""
    move = _move(tenant, move_id)
    if move.state != MoveState.KEPT:
        return _refusal(request, tenant, move, "The move has no kept source to drop.")
    _enqueue(move, finish=True)
    return _done(request, tenant, move, "Dropping the source.", finishing=True)


@staff_tenant
@require_POST
def move_resume(request, tenant, move_id):
    """Hand a running move no worker runs (its task was lost: a broker outage, a worker
    killed) to a worker again. Harmless if one picks it up meanwhile: the task answers busy."""
    move = _move(tenant, move_id)
    if move.state != MoveState.RUNNING:
        return _refusal(request, tenant, move, "The move is not running: nothing to resume.")
    if move_runner_alive(move):
        return _refusal(request, tenant, move, "A worker is running the move already.")
    _enqueue(move)
    return _done(request, tenant, move, "Resuming the move.")


# --- Helpers ---------------------------------------------------------------------------------


def _enqueue(move: Move, *, finish: bool = False) -> None:
    """Send the move's task once the control plane's transaction commits (at once outside
    one). A broker that is down does not fail the request: the move stays recorded, running
    with no runner, and the panel offers to run it again (so does `tenant_move`)."""
    kwargs = {"finish": True} if finish else {}
    args = [str(move.pk)]

    def send() -> None:
        try:
            current_app.send_task(TENANT_MOVE_RUN, args=args, kwargs=kwargs)
        except (BrokerError, RedisError, OSError):
            logger.warning("broker unavailable: move %s left to be run again", move.pk)

    transaction.on_commit(send, using="default")


def _move(tenant: Tenant, move_id) -> Move:
    return get_object_or_404(
        Move.objects.select_related("source_server", "target_server"), pk=move_id, tenant=tenant
    )


def _refused(request, status: int) -> int:
    # htmx swaps only successful answers; a page without it gets the status that says why.
    return 200 if request.htmx else status


def _refusal(request, tenant: Tenant, move: Move, why: str):
    return _render(request, tenant, move=move, refusal=why, status=_refused(request, 409))


def _done(request, tenant: Tenant, move: Move, note: str | None, *, finishing: bool = False):
    if request.htmx:
        return _render(request, tenant, move=move, finishing=finishing)
    if note:
        messages.success(request, note)
    return redirect("console:tenant-placement", slug=tenant.slug)


def _render(
    request,
    tenant: Tenant,
    *,
    move: Move | None = None,
    form: MoveForm | None = None,
    servers: list[tuple[str, str]] | None = None,
    refusal: str = "",
    finishing: bool = False,
    status: int = 200,
):
    """The panel (htmx) or the page: the placement now, the move shown (the one asked about,
    else the active one, else the latest), the form when no move is under way, recent moves."""
    tenant = Tenant.objects.select_related("server").get(pk=tenant.pk)  # a switch moves it
    active = move_active(tenant=tenant)
    moves = move_list(tenant=tenant, limit=MOVES_SHOWN)
    shown = move or active or (moves[0] if moves else None)
    if active is None and form is None:
        servers = servers or _server_choices()
        current = tenant.server.name if tenant.server_id else DEFAULT_SERVER_NAME
        form = MoveForm(servers=servers, initial={"to": tenant.isolation_mode, "server": current})
    if active is not None and form is not None:
        # The form is not offered while a move is under way; its refusal still shows.
        refusal = refusal or " ".join(form.non_field_errors())
    context = {
        "nav": "tenants",
        "tab": "settings",
        "tenant": tenant,
        "form": form if active is None else None,
        "move": shown,
        "progress": _progress(shown, finishing=finishing) if shown else None,
        "moves": moves,
        "refusal": refusal,
    }
    template = "_placement_panel.html" if wants_fragment(request) else "placement.html"
    return render(request, f"console/tenants/{template}", context, status=status)


def _server_choices() -> list[tuple[str, str]]:
    """The platform database ("default") and every registered server, with where it is and
    how many tenants it holds (a silo given by DSN, the older way, is on no server to pick)."""
    choices = []
    for load in server_list(measure=False):
        if load.name.startswith("("):
            continue
        count = load.tenant_count
        plural = "" if count == 1 else "s"
        choices.append((load.name, f"{load.name} ({load.where}; {count} tenant{plural})"))
    return choices


def _source_server(move: Move) -> str:
    if move.source_server_id:
        return move.source_server.name
    return "(dsn)" if move.source_dsn else DEFAULT_SERVER_NAME


def _progress(move: Move, *, finishing: bool = False) -> dict:
    """What the progress partial shows and offers, from the move's recorded progress."""
    recorded = move.progress or {}
    running = move.state == MoveState.RUNNING
    before_switch = move.phase not in (MovePhase.CLEANUP, MovePhase.DONE)
    step = STEPS.index(move.phase) + 1 if move.phase in STEPS else len(STEPS)
    return {
        "tables": sorted(
            (name, figures.get("copied", 0))
            for name, figures in (recorded.get("tables") or {}).items()
        ),
        "applied": recorded.get("applied", 0),
        "pending": recorded.get("pending"),
        "building_indexes": bool(recorded.get("building_indexes")),
        "step": step,
        "steps": len(STEPS),
        "server": move.target_server.name if move.target_server_id else DEFAULT_SERVER_NAME,
        "source_server": _source_server(move),
        "cancellable": running and before_switch and not move.cancel_requested,
        "cancelling": running and move.cancel_requested,
        "finishable": move.state == MoveState.KEPT and not finishing,
        "stalled": running and not move_runner_alive(move),
        "polling": running or (finishing and move.state == MoveState.KEPT),
        "finishing": finishing and move.state == MoveState.KEPT,
    }
