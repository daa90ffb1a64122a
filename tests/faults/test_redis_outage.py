"""Redis goes away (SIGKILL) while the platform serves.

Documented behaviour (README, "Operations: failures and recovery"): an upload is stored and
accepted (202) and ingested once Redis is back (the stalled-document sweep sends it again); an
answer is refused with 503 `redis_unavailable` (generation slots live in Redis and fail
closed); search keeps working (its quotas are in PostgreSQL). When Redis is back the worker
consumes again by itself: the known Celery failure is a worker that stays connected to
nothing and consumes nothing after a reset.
"""

from tests.faults.stack import long_text

PROMPT_SECONDS = 5
# A refused connection is not retried with backoff: redis-py's default retries alone took 3.8 s.
REFUSED_SECONDS = 3


def test_redis_killed_then_back(stack):
    status, _, before, _ = stack.call(
        "POST", "/api/v1/documents", {"text": long_text(2, "redis-1")}
    )
    assert status == 202
    stack.wait_ready(before["id"])

    stack.stop_redis()
    try:
        status, _, during, seconds = stack.call(
            "POST", "/api/v1/documents", {"text": "Stored while Redis was away. " * 20}
        )
        assert status == 202, during
        assert seconds < PROMPT_SECONDS
        assert stack.document(during["id"])["status"] == "queued"

        status, headers, body, seconds = stack.call(
            "POST", "/api/v1/answer", {"question": "What was stored?"}
        )
        assert status == 503, body
        assert headers["Content-Type"] == "application/problem+json"
        assert body["code"] == "redis_unavailable" and int(headers["Retry-After"]) > 0
        assert seconds < REFUSED_SECONDS

        status, _, found, seconds = stack.call(
            "POST", "/api/v1/search", {"query": "lighthouse", "mode": "keyword"}
        )
        assert status == 200 and found["results"], found
        assert seconds < PROMPT_SECONDS

        status, _, ready, _ = stack.call("GET", "/readyz")
        assert status == 503 and "redis" in ready["failed"], ready
    finally:
        stack.start_redis()

    # A fresh upload is consumed by the same worker: it reconnected by itself.
    status, _, after, _ = stack.call("POST", "/api/v1/documents", {"text": long_text(4, "redis-2")})
    assert status == 202, after
    stack.wait_ready(after["id"], timeout=90)
    # The upload accepted during the outage was not lost: the sweep sent it again.
    doc = stack.wait_ready(during["id"], timeout=120)
    assert len(doc["ordinals"]) == doc["chunks_total"] == len(set(doc["ordinals"])) > 0
    assert stack.call("GET", "/readyz")[0] == 200
