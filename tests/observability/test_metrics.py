"""`/metrics`: Prometheus text merged from every process (this one, the real worker, the real
gunicorn), with the OpenTelemetry-named HTTP and GenAI metrics after traffic."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest
from django.test import Client

from tests.helpers import bearer, wait_until
from tests.observability.conftest import QUESTION, ZOO, value


def test_metrics_after_traffic_show_http_genai_cache_and_ingestion(
    api, make_tenant, make_key, upload, wait_done, worker, scrape
):
    from observability.metrics import reset_tenant_labels

    reset_tenant_labels()  # this test's tenant gets its own label, whatever ran before
    before = scrape()
    tenant = make_tenant("pool")
    key = make_key(tenant)

    # Ingested by the worker process: its counters reach this process's /metrics.
    document = wait_done(key, upload(key, text=ZOO, title="Zoo handbook").json()["id"])
    assert document["status"] == "ready"
    search = api.post("/api/v1/search", {"query": QUESTION}, format="json", **bearer(key))
    assert search.status_code == 200
    body = {"question": QUESTION, "max_tokens": 8, "temperature": 0}
    first = api.post("/api/v1/answer", body, format="json", **bearer(key)).json()
    again = api.post("/api/v1/answer", body, format="json", **bearer(key)).json()
    assert (first["cached"], again["cached"]) == (False, True)
    after = scrape()

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # HTTP: per route (the URL pattern, not the path), method and status.
    assert (
        grew(
            "http_server_request_duration_seconds_count",
            http_route="/api/v1/search",
            http_request_method="POST",
            http_response_status_code="200",
        )
        == 1
    )
    assert grew("http_server_request_duration_seconds_count", http_route="/api/v1/answer") == 2
    routes = {dict(labels).get("http_route") for (_, labels) in after}
    assert "/api/v1/documents/<uuid:document_id>" in routes
    assert not any(document["id"] in (route or "") for route in routes)
    assert grew("http_server_request_duration_seconds_sum", http_route="/api/v1/search") > 0

    # Per tenant, by endpoint kind.
    assert grew("tenantry_tenant_requests_total", tenant=tenant.slug, kind="search") == 1
    assert grew("tenantry_tenant_requests_total", tenant=tenant.slug, kind="answer") == 2
    assert (
        grew("tenantry_tenant_tokens_total", tenant=tenant.slug, gen_ai_token_type="input")
        == (first["usage"]["prompt_tokens"])
    )

    # GenAI, named after the OpenTelemetry semantic conventions. The cached answer used no
    # tokens and no model, but it was a request with a time to first token.
    chat = {"gen_ai_operation_name": "chat", "gen_ai_request_model": first["model"]}
    assert grew("gen_ai_client_token_usage_count", gen_ai_token_type="input", **chat) == 1
    assert (
        grew("gen_ai_client_token_usage_sum", gen_ai_token_type="input", **chat)
        == (first["usage"]["prompt_tokens"])
    )
    assert (
        grew("gen_ai_client_token_usage_sum", gen_ai_token_type="output", **chat)
        == (first["usage"]["completion_tokens"])
    )
    assert grew("gen_ai_server_time_to_first_token_seconds_count", **chat) == 2
    assert grew("gen_ai_server_request_duration_seconds_count", **chat) == 2
    assert grew("gen_ai_server_request_duration_seconds_sum", **chat) > 0
    assert grew("gen_ai_client_operation_duration_seconds_count", **chat) == 1
    assert (
        grew("gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="embeddings")
        >= 2  # the document's chunks (worker), the search's and the answer's query
    )

    # Caches: the repeated answer hit; the answer's query embedding was the search's.
    assert grew("tenantry_cache_requests_total", cache="answer", result="miss") == 1
    assert grew("tenantry_cache_requests_total", cache="answer", result="hit") == 1
    assert grew("tenantry_cache_requests_total", cache="embedding", result="hit") >= 1
    assert grew("tenantry_embedding_texts_total", purpose="ingest") >= document["chunk_count"]

    # Ingestion: chunks counted by the worker process (whose tenant labels may be spent on
    # earlier tests' tenants: the sum over all labels); the queue depth read from Redis.
    assert grew("tenantry_chunks_embedded_total") >= document["chunk_count"] > 0
    # Nothing waits: the ingestion is done and the idle worker takes any task at once, so the
    # ingest queue's depth falls to 0 within moments (the exact counting of waiting messages
    # is test_the_queue_depth_counts_waiting_tasks).
    wait_until(
        lambda: value(scrape(), "tenantry_ingestion_queue_depth", queue="ingest") == 0,
        timeout=15,
        message="the ingest queue never emptied",
    )
    assert ("tenantry_ingestion_queue_depth", frozenset({("queue", "ingest")})) in after
    assert (
        grew("tenantry_celery_task_duration_seconds_count", task="rag.tasks.ingest_document") >= 1
    )


@pytest.mark.db
def test_the_queue_depth_counts_waiting_tasks(settings, scrape):
    from tenants.services.quotas import redis_client

    # A queue of its own, that the session's worker does not read.
    settings.CELERY_TASK_DEFAULT_QUEUE = queue = "observability-test-queue"
    redis_client().rpush(queue, b"{}", b"{}")
    redis_client().rpush(queue + "\x06\x169", b"{}")  # a priority list of the same queue
    try:
        assert value(scrape(), "tenantry_ingestion_queue_depth", queue=queue) == 3
    finally:
        redis_client().delete(queue, queue + "\x06\x169")
    assert value(scrape(), "tenantry_ingestion_queue_depth", queue=queue) == 0


def test_every_declared_queue_has_a_depth_sample(settings, scrape):
    samples = {
        dict(labels)["queue"]: depth
        for (name, labels), depth in scrape().items()
        if name == "tenantry_ingestion_queue_depth"
    }
    assert {"celery", "ingest", "evaluation", "maintenance"} <= set(settings.CELERY_TASK_QUEUES)
    assert set(settings.CELERY_TASK_QUEUES) <= set(samples)
    assert all(depth >= 0 for depth in samples.values())


def test_a_task_routed_to_ingest_raises_the_ingest_depth_only(worker, scrape):
    """The task is sent as rag.handoff sends it (by name, through the real routes) while the
    session's worker consumes neither ingest nor evaluation, so it waits in Redis."""
    from config import celery_app
    from tenants.services.quotas import redis_client

    paused = ("ingest", "evaluation")

    def depth(queue: str) -> float:
        return value(scrape(), "tenantry_ingestion_queue_depth", queue=queue)

    sent = None
    try:
        for queue in paused:
            assert celery_app.control.cancel_consumer(queue, reply=True, timeout=10, limit=1)
        worker_polls_without(paused)
        before = {queue: depth(queue) for queue in paused}
        sent = celery_app.send_task(
            "rag.tasks.ingest_document", args=[str(uuid.uuid4()), str(uuid.uuid4())]
        )
        waiting = [
            json.loads(raw)["headers"]["id"] for raw in redis_client().lrange("ingest", 0, -1)
        ]
        assert sent.id in waiting, "the task is not in the ingest list"
        # At least one: the worker's stalled-document sweep may requeue an earlier document.
        assert depth("ingest") >= before["ingest"] + 1
        assert depth("evaluation") == before["evaluation"]
    finally:
        if sent is not None:
            for raw in redis_client().lrange("ingest", 0, -1):
                if json.loads(raw)["headers"]["id"] == sent.id:
                    redis_client().lrem("ingest", 0, raw)
        for queue in paused:
            assert celery_app.control.add_consumer(queue, reply=True, timeout=10, limit=1)


def worker_polls_without(queues: tuple[str, ...], timeout: float = 15) -> None:
    """Returns once the worker's BRPOP names the default queue and none of `queues`.

    The worker answers a cancel_consumer before the cancel takes effect: kombu applies it
    after the BRPOP in flight returns (celery/celery#1773), and that BRPOP would still take a
    message sent to the cancelled queue. MONITOR shows the next one."""
    from tenants.services.quotas import redis_client

    deadline = time.monotonic() + timeout
    with redis_client().monitor() as monitor:
        while time.monotonic() < deadline:
            words = monitor.next_command()["command"].split()
            if words[0].upper() == "BRPOP" and "celery" in words and not set(queues) & set(words):
                return
    pytest.fail(f"the worker still consumes one of {queues}")


def test_requests_served_by_gunicorn_are_in_the_sums(web_server, scrape):
    """Another process (the real gunicorn) writes its own files; /metrics here merges them."""
    before = value(scrape(), "http_server_request_duration_seconds_count", http_route="/healthz")
    for _ in range(3):
        with urllib.request.urlopen(web_server.url + "/healthz", timeout=10) as response:  # noqa: S310
            assert response.status == 200
    after = value(scrape(), "http_server_request_duration_seconds_count", http_route="/healthz")
    assert after - before == 3


def test_tenant_labels_are_bounded(api, make_tenant, make_key, settings, scrape):
    from observability.metrics import reset_tenant_labels

    settings.METRICS_TENANT_LABELS = 2
    reset_tenant_labels()
    tenants = [make_tenant("pool") for _ in range(3)]
    before = scrape()
    for tenant in tenants:
        response = api.get("/api/v1/tenant", **bearer(make_key(tenant)))
        assert response.status_code == 200
    after = scrape()
    labelled = {dict(labels).get("tenant") for (name, labels) in after if "tenant" in dict(labels)}
    assert {tenants[0].slug, tenants[1].slug} <= labelled
    assert tenants[2].slug not in labelled

    def grew(**labels) -> float:
        name = "tenantry_tenant_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(tenant=tenants[0].slug, kind="tenant") == 1
    assert grew(tenant="other", kind="tenant") == 1
    reset_tenant_labels()


def test_metrics_need_the_token_or_a_staff_session(
    settings, make_tenant, make_key, staff_client, user_client
):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    anonymous = Client()
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/metrics")["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.get("/metrics", **bearer("wrong")).status_code == 401
    # A tenant's API key is no metrics credential: metrics show every tenant's traffic.
    tenant_key = make_key(make_tenant("pool"), scopes=("ingest", "query", "admin"))
    assert anonymous.get("/metrics", **bearer(tenant_key)).status_code == 401
    assert user_client.get("/metrics").status_code == 401

    allowed = anonymous.get("/metrics", **bearer("s3cret-metrics-token"))
    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")
    assert b"# TYPE http_server_request_duration_seconds histogram" in allowed.content
    assert staff_client.get("/metrics").status_code == 200


def test_without_a_token_only_staff_sessions_read_metrics(settings, staff_client, user_client):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", **bearer("")).status_code == 403
    assert user_client.get("/metrics").status_code == 403
    assert staff_client.get("/metrics").status_code == 200
