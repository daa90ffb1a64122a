"""The app refuses to start when its database role could bypass row-level security."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import superuser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bypass_role(pg):
    with superuser("tenantry") as conn:
        conn.execute("DROP ROLE IF EXISTS sneaky_bypass")
        conn.execute("CREATE ROLE sneaky_bypass LOGIN BYPASSRLS PASSWORD 'pw'")
        conn.execute("GRANT CONNECT ON DATABASE tenantry TO sneaky_bypass")
    yield "sneaky_bypass"
    with superuser("tenantry") as conn:
        conn.execute("DROP OWNED BY sneaky_bypass")
        conn.execute("DROP ROLE sneaky_bypass")


def _start_wsgi(database_url: str) -> subprocess.CompletedProcess:
    owner = settings.DATABASES["owner"]
    host = owner["OPTIONS"].get("host") or owner["HOST"]
    port = owner["OPTIONS"].get("port") or owner["PORT"]
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=database_url.format(host=host, port=port),
        REDIS_URL=settings.REDIS_URL,
    )
    return subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wsgi_refuses_a_role_with_bypassrls(bypass_role):
    result = _start_wsgi("postgresql://sneaky_bypass:pw@/tenantry?host={host}&port={port}")
    assert result.returncode != 0
    assert "UnsafeDatabaseRole" in result.stderr and "BYPASSRLS" in result.stderr


def test_wsgi_starts_with_the_app_role(pg):
    app = settings.DATABASES["default"]
    result = _start_wsgi(
        f"postgresql://{app['USER']}:{app['PASSWORD']}@/tenantry?host={{host}}&port={{port}}"
    )
    assert result.returncode == 0, result.stderr
