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
