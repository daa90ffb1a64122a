"""Helpers for data-plane tests: upload through the real API and wait for the real worker."""

from __future__ import annotations

import time

import pytest

from tests.conftest import bearer


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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = api.get(f"/api/v1/documents/{document_id}", **bearer(key)).json()
            if body["status"] in ("ready", "failed"):
                return body
            time.sleep(0.3)
        raise AssertionError(f"document {document_id} still {body['status']} after {timeout}s")

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
