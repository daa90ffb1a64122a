"""`/healthz` (the process is alive) and `/readyz` (database, Redis, both models) for load
balancers: no authentication, 503 naming what failed, never a model load per probe."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture(autouse=True)
def fresh_readiness():
    from observability import health

    health.clear_cache()
    yield
    health.clear_cache()


def test_healthz_answers_without_the_database():
    # No `pg` fixture: pytest-django refuses any database query here, so this also proves
    # that liveness touches nothing but the process.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_check(pg):
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["vectors"] == "ok"
    assert body["checks"]["embedding_model"] in {"loaded", "loadable"}
    assert body["checks"]["generator"] in {"loaded", "loadable"}


def test_readyz_is_503_when_redis_is_unreachable(pg, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready" and body["failed"] == ["redis"]
    assert body["checks"]["redis"] == "failed" and body["checks"]["database"] == "ok"
    assert "127.0.0.1" not in response.content.decode()  # reasons go to the log only


def test_readyz_is_503_naming_vectors_when_postgresql_cannot_compute_a_distance(pg):
    from django.db import connections

    # A server without pgvector where the app looks answers `SELECT 1` but no distance: here,
    # the request's own connection with a search_path that leaves out pgvector's schema.
    connection = connections["default"]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SET search_path TO pg_catalog")
    try:
        response = Client().get("/readyz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET search_path")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["vectors"] and body["checks"]["database"] == "ok"


def test_a_server_that_cannot_compute_a_distance_is_named_clearly(pg):
    from config import vector_check
    from tests.helpers import database_without_pgvector

    with database_without_pgvector() as url, pytest.raises(vector_check.VectorsBroken) as failure:
        vector_check.check_dsn(url)
    message = str(failure.value)
    assert "could not compute a vector distance" in message
    assert 'type "vector" does not exist' in message
    assert "x86-64-v3" in message and "invalid opcode" in message


def test_readyz_is_503_when_the_database_is_unreachable(pg, monkeypatch):
    from django.db import OperationalError

    from observability import health

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", down)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]


def test_a_missing_generator_file_is_not_ready_and_no_probe_loads_a_model(
    pg, settings, monkeypatch, tmp_path
):
    from rag import embedding
    from rag.generation import model as generation

    loads = []
    real_load, real_get = generation._load, embedding.get_model
    # Spies around the real loaders: a probe that loaded a model would show up in `loads`.
    monkeypatch.setattr(generation, "_load", lambda spec: loads.append("llm") or real_load(spec))
    monkeypatch.setattr(embedding, "get_model", lambda: loads.append("embedding") or real_get())
    monkeypatch.setattr(generation, "_models", {})
    settings.LLM_MODEL_PATH = str(tmp_path / "missing.gguf")
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["generator"]

    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"not a model")
    settings.LLM_MODEL_PATH = str(not_gguf)
    assert Client().get("/readyz").status_code == 503  # the file check is cached a while
    from observability import health

    health.clear_cache()
    assert Client().get("/readyz").json()["failed"] == ["generator"]
    assert loads == []


def test_the_model_file_checks_are_cached(pg, settings, monkeypatch):
    from observability import health

    calls = []
    real = health.CHECKS["generator"]
    monkeypatch.setitem(health.CHECKS, "generator", lambda: calls.append(1) or real())
    for _ in range(3):
        assert Client().get("/readyz").status_code == 200
    assert calls == [1]
    settings.READINESS_CACHE_SECONDS = 0
    Client().get("/readyz")
    assert calls == [1, 1]
