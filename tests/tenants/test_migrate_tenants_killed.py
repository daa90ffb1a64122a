"""`migrate_tenants` killed (SIGKILL) halfway through one tenant's migrations: what it applied
stays applied and recorded, the migration it was in rolls back, and a second run resumes
there and finishes. To kill it exactly mid-way, the test holds a lock the next migration needs
and watches the command wait on it."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from psycopg import sql

from tenants import placement
from tenants.services.dataplane import dataplane_pending
from tests.helpers import service_env, superuser, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_killed_mid_tenant_then_resumed(make_tenant):
    tenant = make_tenant("bridge")
    alias = placement.owner_alias_for(tenant)
    call_command("migrate", "rag", "0005", database=alias, verbosity=0)
    assert dataplane_pending(tenant=tenant)[0] == "0006_evaluation"
    chunks = sql.Identifier(tenant.schema_name, "rag_chunk")
    with (
        superuser(settings.DATABASES["default"]["NAME"]) as blocker,
        superuser(settings.DATABASES["default"]["NAME"]) as watcher,
    ):
        blocker.autocommit = False
        # 0006 and 0007 pass (new tables; an index option); 0008 alters the chunk table's id
        # column and must wait.
        blocker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(chunks))
        command = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "migrate_tenants"],
            cwd=ROOT,
            env=service_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def waiting_in_0008() -> bool:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE %s",
                ["%rag_chunk%"],
            ).fetchone()
            return row[0] > 0

        try:
            wait_until(
                waiting_in_0008,
                timeout=120,
                interval=0.1,
                message=lambda: (
                    "never reached 0008: "
                    + repr(
                        watcher.execute(
                            "SELECT usename, state, wait_event_type, left(query, 200) "
                            "FROM pg_stat_activity WHERE usename IS NOT NULL"
                        ).fetchall()
                    )
                ),
            )
        finally:
            os.killpg(command.pid, signal.SIGKILL)
            command.wait()
        blocker.rollback()

    pending = dataplane_pending(tenant=tenant)
    assert "0006_evaluation" not in pending and pending[0] == "0008_random_chunk_ids"

    resumed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate_tenants"],
        cwd=ROOT,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert dataplane_pending(tenant=tenant) == []
