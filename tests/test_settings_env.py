"""Settings read from the environment refuse values they cannot mean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import env_bool
from tests.helpers import service_env

ROOT = Path(__file__).resolve().parent.parent
FLAG = "TENANTRY_TEST_FLAG"


@pytest.mark.parametrize(
    "word,expected",
    [
        ("true", True),
        ("1", True),
        (" Yes ", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("NO", False),
        ("off", False),
        ("", False),
    ],
)
def test_boolean_words(monkeypatch, word, expected):
    monkeypatch.setenv(FLAG, word)
    assert env_bool(FLAG, default=not expected) is expected


def test_an_unset_boolean_takes_its_default(monkeypatch):
    monkeypatch.delenv(FLAG, raising=False)
    assert env_bool(FLAG, default=True) is True and env_bool(FLAG) is False


def test_a_typo_is_a_configuration_error_not_false(monkeypatch):
    monkeypatch.setenv(FLAG, "ture")
    with pytest.raises(ImproperlyConfigured, match=r"TENANTRY_TEST_FLAG='ture' is not a boolean"):
        env_bool(FLAG)


def test_the_platform_refuses_to_start_on_a_misspelt_boolean(pg):
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=ROOT,
        env=service_env(DJANGO_DEBUG="treu"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG='treu' is not a boolean" in result.stderr


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _bare_env(data_dir: Path) -> dict[str, str]:
    import os

    unset = {"DATABASE_URL", "OWNER_DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings")
    return env


def test_importing_settings_starts_no_server(tmp_path):
    """Without the servers' URLs, settings refuse to load and say what is missing; they start
    nothing and write nothing under DATA_DIR (the entry points do that, config/servers.py)."""
    result = _python("import config.settings", _bare_env(tmp_path))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "is not set" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_settings_read_the_servers_from_the_environment(tmp_path):
    env = _bare_env(tmp_path)
    env.update(
        DATABASE_URL="postgresql://app:pw@db.invalid:5432/tenantry",
        REDIS_URL="redis://redis.invalid:6379/0",
        DJANGO_SECRET_KEY="k" * 50,
    )
    result = _python(
        "from config import settings as s;"
        "print(s.DATABASES['default']['HOST'], s.DATABASES['owner']['HOST'], s.REDIS_URL)",
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.invalid", "db.invalid", "redis://redis.invalid:6379/0"]
    assert list(tmp_path.iterdir()) == []
