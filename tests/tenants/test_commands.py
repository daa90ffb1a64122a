"""The operator commands, with their exact interface."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import ApiKey, Tenant

ROOT = Path(__file__).resolve().parents[2]


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_tenant_lifecycle_through_commands(pg, api):
    assert "Created bridge tenant acme" in run(
        "tenant_create", "acme", "--mode", "bridge", "--name", "Acme Inc"
    )
    listing = run("tenant_list")
    assert listing.splitlines()[0].split() == ["SLUG", "MODE", "SERVER", "STATUS", "NAME", "ID"]
    assert "acme" in listing and "bridge" in listing and "Acme Inc" in listing
    assert "suspended" in run("tenant_suspend", "acme")
    assert Tenant.objects.get(slug="acme").status == "suspended"
    assert "active" in run("tenant_resume", "acme")

    output = run("apikey_create", "acme", "--scopes", "ingest,query", "--expires-days", "7")
    key = output.rstrip("\n").splitlines()[-1]
    assert key.startswith("tnt_") and " " not in key
    stored = ApiKey.objects.get(prefix=key[:16])
    assert stored.scopes == ["ingest", "query"] and stored.expires_at is not None
    assert api.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200

    assert "Revoked" in run("apikey_revoke", key[:16])
    assert api.get("/api/v1/tenant", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401

    with pytest.raises(CommandError, match="--yes"):
        run("tenant_delete", "acme")
    assert "Deleted tenant acme" in run("tenant_delete", "acme", "--yes")
    assert not Tenant.objects.filter(slug="acme").exists()


def test_apikey_revoke_by_id(make_tenant):
    tenant = make_tenant("pool")
    run("apikey_create", tenant.slug, "--scopes", "query")
    key = ApiKey.objects.get(tenant=tenant)
    run("apikey_revoke", str(key.id))
    key.refresh_from_db()
    assert key.revoked_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenant_create", "bad slug", "--mode", "pool"), "slug"),
        (("tenant_suspend", "nobody"), "No tenant with slug 'nobody'"),
        (("apikey_create", "nobody", "--scopes", "query"), "No tenant"),
        (("apikey_revoke", "tnt_doesnotexist"), "No API key"),
    ],
)
def test_commands_fail_with_clear_messages(pg, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_apikey_create_refuses_unknown_scopes(make_tenant):
    tenant = make_tenant("pool")
    with pytest.raises(CommandError, match="Scopes"):
        run("apikey_create", tenant.slug, "--scopes", "query,root")


def _manage(*args, data_dir: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "OWNER_DATABASE_URL", "REDIS_URL"}
    }
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_command_attaches_to_the_running_embedded_servers(make_tenant):
    """Like a second terminal beside `make run`: same DATA_DIR, same servers, left running."""
    tenant = make_tenant("pool")
    result = _manage("tenant_list", data_dir=settings.DATA_DIR)
    assert result.returncode == 0, result.stderr
    assert tenant.slug in result.stdout
    assert Tenant.objects.filter(slug=tenant.slug).exists()  # our server still answers


@pytest.mark.worker
def test_a_command_alone_starts_the_servers_it_needs_and_stops_them(tmp_path):
    data_dir = tmp_path / "var"
    for args in (["migrate", "-v0"], ["tenant_create", "solo", "--mode", "silo"], ["tenant_list"]):
        result = _manage(*args, data_dir=data_dir)
        assert result.returncode == 0, result.stderr
    assert "solo" in result.stdout and "silo" in result.stdout
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()  # stopped after the command
