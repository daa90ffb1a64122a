"""Fixtures for observability tests: a tenant with an ingested document, scraping /metrics."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.console.conftest import staff_client, user_client  # noqa: F401 - fixtures
from tests.helpers import bearer
from tests.rag.conftest import upload, wait_done  # noqa: F401 - fixtures

ZOO = (
    "# Lakeside zoo handbook\n\n## Zebras\n\nThe zebras at Lakeside zoo eat fresh meadow hay "
    "twice a day, at seven and at five.\n\n## Penguins\n\nThe penguin pool is kept at four "
    "degrees and the penguins are fed herring every morning."
)
QUESTION = "What do the zebras at Lakeside zoo eat?"
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def zoo(make_tenant, make_key, upload, wait_done, worker):  # noqa: F811
    """A pool tenant with the zoo handbook ingested by the real worker: (tenant, key, doc)."""
    tenant = make_tenant("pool")
    key = make_key(tenant)
    document = wait_done(key, upload(key, text=ZOO, title="Zoo handbook").json()["id"])
    assert document["status"] == "ready"
    return tenant, key, document


@pytest.fixture
def scrape(settings):
    """scrape() -> {(name, frozenset(labels.items())): value} of /metrics (every process)."""
    # First: observability.metrics sets the multiprocess folder before prometheus_client loads.
    import observability.metrics  # noqa: F401, I001
    from prometheus_client.parser import text_string_to_metric_families

    settings.METRICS_TOKEN = METRICS_TOKEN

    def run() -> dict:
        response = Client().get("/metrics", **bearer(METRICS_TOKEN))
        assert response.status_code == 200, response.content
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    return run


def value(samples: dict, name: str, **labels) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)
