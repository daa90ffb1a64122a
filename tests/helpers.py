"""Helpers the test modules share: raw PostgreSQL connections as a given role (bypassing
Django), service environments, waiting for other processes, and small request helpers.

They live here, not in tests/conftest.py: conftest files hold the fixtures and hooks pytest
loads by itself, and a test module importing one takes on everything it defines.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings

MODES = ["pool", "bridge", "silo"]


def bearer(key: str) -> dict:
    """Test-client keyword arguments that authenticate a request with an API key."""
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 60,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition not met",
) -> Any:
    """Call `predicate` until it returns something truthy, and return that.

    The one polling loop of the suite: other processes (worker, web server, launcher) work on
    their own time, so tests wait for an observable result rather than sleep a guessed time.
    On timeout it raises AssertionError with `message` (a callable is called then, e.g. to read
    a log) and the predicate's last value. An exception from the predicate ends the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (after {timeout}s; last value: {value!r})")
        time.sleep(interval)


def connect(
    alias: str = "default",
    *,
    dbname: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> psycopg.Connection:
    """A raw autocommit psycopg connection with the settings of a Django alias."""
    cfg = settings.DATABASES[alias]
    options = dict(cfg.get("OPTIONS", {}))
    params = {
        "dbname": dbname or cfg["NAME"],
        "user": user or cfg["USER"],
        "password": password if password is not None else cfg["PASSWORD"],
        "host": options.pop("host", None) or cfg.get("HOST") or None,
        "port": options.pop("port", None) or cfg.get("PORT") or None,
    }
    return psycopg.connect(autocommit=True, **{k: v for k, v in params.items() if v})


def superuser(dbname: str = "postgres") -> psycopg.Connection:
    """The embedded server's bootstrap superuser (socket trust), to look behind RLS in checks."""
    return connect("owner", dbname=dbname, user="postgres", password="")


def service_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess (worker, web server) using this test session's servers."""
    import os

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=settings.APP_DATABASE_URL,
        OWNER_DATABASE_URL=settings.OWNER_DATABASE_URL,
        REDIS_URL=settings.REDIS_URL,
    )
    env.update(extra)  # may name other servers (tests/faults/stack.py)
    return env


def sse_events(body: bytes) -> list[tuple[str, dict]]:
    """(event name, JSON data) of each Server-Sent Event in a streamed answer's body."""
    import json

    events = []
    for block in body.decode().strip().split("\n\n"):
        lines = block.split("\n")
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((name, json.loads(data)))
    return events


def database_url(url: str, dbname: str) -> str:
    """The same PostgreSQL URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


def database_without_pgvector():
    """A context manager: a real, empty database on the test server without the vector
    extension; yields its app-role URL and drops it afterwards."""
    import contextlib
    import uuid

    @contextlib.contextmanager
    def make():
        name = f"novector_{uuid.uuid4().hex[:10]}"
        with superuser() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield database_url(settings.APP_DATABASE_URL, name)
        finally:
            with superuser() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make()


def ingest_now(tenant, texts: dict[str, str], suffix: str = ".txt") -> dict[str, str]:
    """Each text stored and ingested in this process (the service the worker runs, with no
    worker racing it); returns {document id: name}."""
    from rag.services.documents import document_submit
    from rag.services.ingest import document_ingest

    names = {}
    for name, text in texts.items():
        doc = document_submit(
            tenant=tenant, data=text.encode(), filename=f"{name}{suffix}", enqueue=False
        ).document
        assert document_ingest(tenant=tenant, document_id=doc.id) == "ready"
        names[str(doc.id)] = name
    return names


def python_last_line(code: str) -> str:
    """What `code` prints last, run in a fresh interpreter against this session's servers
    (what a process importing only what `code` imports holds)."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env=service_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().splitlines()[-1]
