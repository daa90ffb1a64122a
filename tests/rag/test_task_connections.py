"""The next task on a worker process finds its kept connection clean: no tenant, no schema."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import connections

from tests.celery_probe import connection_state, fail_inside_binding
from tests.helpers import wait_until


def _probe(path: Path, timeout: float = 60, fresh: bool = False) -> dict:
    connection_state.delay(str(path), fresh)
    wait_until(path.exists, timeout=timeout, message="the worker never ran the probe")
    return json.loads(path.read_text())


def _default_search_path() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT current_setting('search_path')")
        return cursor.fetchone()[0]


def test_a_task_after_a_bridge_ingestion_and_after_a_failure_finds_a_clean_connection(
    make_tenant, make_key, upload, wait_done, worker, tmp_path
):
    tenant = make_tenant("bridge")  # its binding sets a search_path as well as the tenant
    key = make_key(tenant)
    # A new connection now: a kept one that passed DB_CONN_MAX_AGE meanwhile would be replaced
    # after the task, and the pids below would differ for that reason alone.
    before = _probe(tmp_path / "before.json", fresh=True)
    document = wait_done(key, upload(key, text="Beavers build dams of branches.").json()["id"])
    assert document["status"] == "ready"
    after_ingestion = _probe(tmp_path / "after-ingestion.json")
    clean = {"tenant_id": "", "search_path": _default_search_path(), "binding": None}
    assert {k: after_ingestion[k] for k in clean} == clean
    # The same kept connection served the tenant's ingestion in between.
    assert after_ingestion["backend_pid"] == before["backend_pid"]

    fail_inside_binding.delay(str(tenant.id))
    after_failure = _probe(tmp_path / "after-failure.json")
    assert {k: after_failure[k] for k in clean} == clean
    assert "failed inside a binding, on purpose" in worker.log()
