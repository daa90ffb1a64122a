"""Helpers for data-plane tests: upload through the real API and wait for the real worker."""

from __future__ import annotations

import pytest
from celery.signals import before_task_publish

from tests.helpers import bearer, wait_until


@pytest.fixture
def upload(api):
    def post(key: str, *, text: str | None = None, file=None, **fields):
        if file is not None:
            return api.post(
                "/api/v1/documents", {"file": file, **fields}, format="multipart", **bearer(key)
            )
        return api.post("/api/v1/documents", {"text": text, **fields}, format="json", **bearer(key))

    return post


@pytest.fixture
def wait_done(api):
    def wait(key: str, document_id: str, timeout: float = 180) -> dict:
        def finished() -> dict | None:
            body = api.get(f"/api/v1/documents/{document_id}", **bearer(key)).json()
            return body if body["status"] in ("ready", "failed") else None

        return wait_until(
            finished, timeout=timeout, interval=0.3, message=f"document {document_id} not done"
        )

    return wait


@pytest.fixture
def search(api):
    def run(key: str, query: str, **params) -> dict:
        response = api.post(
            "/api/v1/search", {"query": query, **params}, format="json", **bearer(key)
        )
        assert response.status_code == 200, response.content
        return response.json()

    return run


@pytest.fixture
def published():
    """(task name, args) of every message this process publishes, seen through Celery's own
    `before_task_publish` signal."""
    sent: list[tuple[str, list]] = []

    def record(sender=None, body=None, **kwargs):
        sent.append((sender, list(body[0]) if body else []))

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)
