"""A tenant with searchable data and an API key, and timed calls of the search endpoint through
the in-process Django client (the whole request path: middleware, authentication, quota,
serialisation, metering), without a network in between."""

from __future__ import annotations

import time

from django.test import Client

from tenants.services.apikeys import apikey_create
from tenants.services.provisioning import tenant_create

from .common import synthetic_corpus
from .store import load_chunks


def tenant_with_data(slug: str, chunks: int, seed: int):
    tenant = tenant_create(slug=slug, mode="pool")
    corpus = synthetic_corpus(chunks, seed=seed)
    load_chunks(tenant, corpus.texts, corpus.vectors)
    _, key = apikey_create(tenant=tenant, scopes=["query"])
    return tenant, key


class ApiClient:
    def __init__(self, key: str):
        self.client = Client(SERVER_NAME="localhost")
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def search(self, query: str, mode: str = "vector", k: int = 10) -> tuple[int, float, dict]:
        """(status, client milliseconds, server timings)."""
        started = time.perf_counter()
        response = self.client.post(
            "/api/v1/search",
            {"query": query, "k": k, "mode": mode},
            content_type="application/json",
            **self.headers,
        )
        elapsed = (time.perf_counter() - started) * 1000
        timings = response.json().get("timings", {}) if response.status_code == 200 else {}
        return response.status_code, elapsed, timings

    def answer(self, question: str, max_tokens: int = 32) -> int:
        response = self.client.post(
            "/api/v1/answer",
            {"question": question, "k": 5, "max_tokens": max_tokens, "cache": False},
            content_type="application/json",
            **self.headers,
        )
        return response.status_code
