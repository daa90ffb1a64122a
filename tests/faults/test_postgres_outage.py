"""PostgreSQL goes away while the platform serves: every call answers 503 problem+json with
Retry-After at once (never a 500, never a hang), /readyz names the database, and when the
server is back web and worker serve again by themselves; the ingestion that was in flight ends
`ready` exactly once, with no duplicate chunks."""

from concurrent.futures import ThreadPoolExecutor

from tests.faults.stack import long_text
from tests.helpers import wait_until

# The bound for an answer during an outage (connect_timeout is 5 s; a refused or
# missing socket fails at once).
PROMPT_SECONDS = 5


def _outage_calls(stack) -> list[tuple[str, tuple]]:
    calls = {
        "search": ("POST", "/api/v1/search", {"query": "lighthouse tide", "mode": "keyword"}),
        "answer": ("POST", "/api/v1/answer", {"question": "What does the log note?"}),
        "upload": ("POST", "/api/v1/documents", {"text": "Written during the outage."}),
        "list": ("GET", "/api/v1/documents", None),
    }
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(stack.call, *call) for name, call in calls.items()}
        return [(name, future.result()) for name, future in futures.items()]


def test_postgres_stopped_mid_flight_then_back(stack):
    status, _, small, _ = stack.call("POST", "/api/v1/documents", {"text": long_text(3, "pg-1")})
    assert status == 202, small
    stack.wait_ready(small["id"])

    status, _, big, _ = stack.call("POST", "/api/v1/documents", {"text": long_text(300, "pg-2")})
    assert status == 202, big
    wait_until(
        lambda: stack.document(big["id"])["status"] == "processing",
        timeout=120,
        interval=0.1,
        message="the long document never started ingesting",
    )

    stack.stop_postgres()
    try:
        for name, (status, headers, body, seconds) in _outage_calls(stack):
            assert status == 503, (name, status, body)
            assert headers["Content-Type"] == "application/problem+json", name
            assert body["code"] == "database_unavailable", (name, body)
            assert int(headers["Retry-After"]) > 0, name
            assert seconds < PROMPT_SECONDS, (name, seconds)
        status, _, ready, _ = stack.call("GET", "/readyz")
        assert status == 503
        assert "database" in ready["failed"], ready
    finally:
        stack.start_postgres()

    # The same processes serve again: nobody restarted them.
    stack.wait_serving(timeout=60, message="the web server did not recover")
    assert stack.call("GET", "/readyz")[0] == 200

    doc = stack.wait_ready(big["id"], timeout=240)
    assert len(doc["ordinals"]) == doc["chunks_total"] == len(set(doc["ordinals"])) > 0
    assert sorted(doc["ordinals"]) == list(range(doc["chunks_total"]))

    status, _, after, _ = stack.call("POST", "/api/v1/documents", {"text": long_text(2, "pg-3")})
    assert status == 202
    stack.wait_ready(after["id"], timeout=60)  # the worker consumes and writes again
