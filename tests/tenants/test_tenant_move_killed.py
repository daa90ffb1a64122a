"""`tenant_move` killed with SIGKILL at each phase (and inside the fence, writes held and the
source marked moved): run again, it resumes to exactly one live placement; cancelled
instead (before the switch), it rolls back to the source. No schema, database or rows are
left behind either way, and the tenant's rows are exactly what they were."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tenants.models import MoveState, TenantMove
from tenants.services.moves import move_active, move_cancel, move_run
from tenants.services.moves.endpoints import source_of, target_of
from tests.helpers import service_env, wait_until
from tests.tenants.moves import rows, seed
from tests.tenants.test_tenant_move import audit, placement_gone

ROOT = Path(__file__).resolve().parents[2]
BEFORE_SWITCH = ("prepare", "copy", "catch_up", "fence", "switch")


def kill_at(tenant, to: str, point: str) -> TenantMove:
    command = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "tenant_move", tenant.slug, "--to", to],
        cwd=ROOT,
        env=service_env(MOVE_PAUSE_AT=point, MOVE_DRAIN_SECONDS="0"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: TenantMove.objects.filter(tenant=tenant, error=f"paused at {point}").exists(),
            timeout=120,
            interval=0.1,
            message=f"the move never reached {point}",
        )
    finally:
        os.killpg(command.pid, signal.SIGKILL)
        command.wait()
    return move_active(tenant=tenant)


@pytest.fixture
def quick_takeover(settings):
    settings.MOVE_DRAIN_SECONDS = 0
    settings.MOVE_RUNNER_TIMEOUT_SECONDS = 0  # the killed runner is taken for dead at once


@pytest.mark.parametrize("point", [*BEFORE_SWITCH, "cleanup"])
def test_killed_then_resumed(make_tenant, quick_takeover, point):
    tenant = make_tenant("pool")
    other = make_tenant("pool")
    seed(tenant)
    seed(other, tag="other")
    before, others_before = rows(tenant), rows(other)

    killed = kill_at(tenant, "bridge", point)
    assert killed.state == MoveState.RUNNING
    moved = move_run(killed)

    tenant.refresh_from_db()
    assert moved.state == MoveState.DONE, moved.error
    assert tenant.isolation_mode == "bridge"
    assert rows(tenant) == before
    assert rows(other) == others_before
    assert placement_gone(source_of(moved))
    code, report = audit()
    assert code == 0, report


@pytest.mark.parametrize("point", BEFORE_SWITCH)
def test_killed_then_rolled_back(make_tenant, quick_takeover, point):
    tenant = make_tenant("bridge")
    seed(tenant)
    before = rows(tenant)

    killed = kill_at(tenant, "silo", point)
    rolled = move_cancel(move=killed)

    tenant.refresh_from_db()
    assert rolled.state == MoveState.CANCELLED
    assert tenant.isolation_mode == "bridge" and tenant.placement_version == 1
    assert rows(tenant) == before
    assert placement_gone(target_of(rolled))
    # Writes flow again at the source (a "moved" mark left by the kill was taken away).
    from rag.models import Document
    from tenants.context import tenant_context

    with tenant_context(tenant):
        assert Document.objects.update(title="after") == 3
