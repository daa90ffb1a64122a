"""Where the servers are, decided by the entry points before settings are read.

Settings only read the environment (importing them starts nothing). The entry points that a
person runs call `ensure_environment()` first: `manage.py`, the WSGI application, the
launcher behind `make run` (platform/run.py) and the test settings. With no DATABASE_URL it
starts, or attaches to, the embedded PostgreSQL under DATA_DIR; with no REDIS_URL the
embedded Redis; with no DJANGO_SECRET_KEY the key kept under DATA_DIR. It puts what it found
in `os.environ`, so every process started from there (workers, beat, gunicorn, a
runserver's reloader) uses the same servers without starting its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR", BASE_DIR / "var")).resolve()


def ensure_environment(step: Callable[[str], None] | None = None) -> None:
    """Fill DATABASE_URL / OWNER_DATABASE_URL, REDIS_URL and DJANGO_SECRET_KEY from the
    embedded servers when unset; `step` is told before each server is started."""
    from . import embedded

    folder = data_dir()
    if not os.environ.get("DATABASE_URL"):
        if step:
            step(f"Starting embedded PostgreSQL in {folder / 'pgdata'}")
        pg = embedded.start_postgres(folder / "pgdata", passwords_from=folder)
        os.environ["DATABASE_URL"] = pg.url(embedded.APP_ROLE)
        os.environ["OWNER_DATABASE_URL"] = pg.url(embedded.OWNER_ROLE)
    if not os.environ.get("REDIS_URL"):
        if step:
            step(f"Starting embedded Redis in {folder / 'redis'}")
        os.environ["REDIS_URL"] = embedded.start_redis(folder / "redis")
    if not os.environ.get("DJANGO_SECRET_KEY"):
        os.environ["DJANGO_SECRET_KEY"] = embedded.django_secret_key(folder)
