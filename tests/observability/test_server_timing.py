"""Search and answer responses carry `Server-Timing` and a `timings` object that agree, and
whose stages fit inside the total."""

from __future__ import annotations

import json
import re

from tests.helpers import bearer
from tests.observability.conftest import QUESTION, value

# Each stage is rounded to 0.01 ms on its own, so a sum may pass the total by that much a stage.
ROUNDING = 0.05


def server_timing(response) -> dict[str, float]:
    header = response["Server-Timing"]
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"(\w+);dur=([0-9.]+)", header)}


def test_search_stages_fit_in_the_total_and_match_the_body(api, zoo):
    _, key, _ = zoo
    response = api.post("/api/v1/search", {"query": QUESTION}, format="json", **bearer(key))
    assert response.status_code == 200, response.content
    header, timings = server_timing(response), response.json()["timings"]
    assert set(header) >= {"embed", "retrieve", "total"}
    assert header["embed"] == timings["embed_ms"]
    assert header["retrieve"] == timings["search_ms"] == header["search"]
    assert header["total"] == timings["total_ms"] > 0
    assert header["embed"] + header["retrieve"] <= header["total"] + ROUNDING


def test_answer_stages_fit_in_the_total_and_match_the_body(api, zoo):
    _, key, _ = zoo
    body = {"question": QUESTION, "max_tokens": 8, "cache": False}
    response = api.post("/api/v1/answer", body, format="json", **bearer(key))
    assert response.status_code == 200, response.content
    header, timings = server_timing(response), response.json()["timings"]
    assert set(header) == {"embed", "retrieve", "queue", "ttft", "generate", "total"}
    for stage, dur in header.items():
        assert dur == timings[f"{stage}_ms"], stage
    total = header["total"]
    assert total > 0 and header["generate"] > 0
    assert header["embed"] + header["retrieve"] <= total + ROUNDING
    assert header["ttft"] <= total and header["generate"] <= total
    assert header["embed"] + header["retrieve"] + header["queue"] + header["generate"] <= (
        total + 4 * ROUNDING
    )
    assert 'cache;desc="miss"' in response["Server-Timing"]


def test_a_cached_answer_says_so_in_server_timing(api, zoo):
    _, key, _ = zoo
    body = {"question": QUESTION, "max_tokens": 8, "temperature": 0}
    api.post("/api/v1/answer", body, format="json", **bearer(key))
    again = api.post("/api/v1/answer", body, format="json", **bearer(key))
    assert again.json()["cached"] is True
    header = server_timing(again)
    assert header["total"] == again.json()["timings"]["total_ms"]
    assert header["ttft"] <= header["total"]
    assert 'cache;desc="hit"' in again["Server-Timing"]


def test_a_streamed_answer_sends_what_is_known_before_the_first_token(api, zoo, scrape):
    _, key, _ = zoo
    route = {"http_route": "/api/v1/answer", "http_response_status_code": "200"}
    before = scrape()
    body = {"question": QUESTION, "max_tokens": 8, "stream": True, "cache": False}
    response = api.post("/api/v1/answer", body, format="json", **bearer(key))
    assert response.status_code == 200
    header = server_timing(response)
    assert set(header) == {"embed", "retrieve"}
    # The request is measured when its stream ends, not when its headers leave.
    count = "http_server_request_duration_seconds_count"
    assert value(scrape(), count, **route) == value(before, count, **route)
    events = b"".join(response.streaming_content).decode()
    response.close()
    assert "event: done" in events and '"generate_ms"' in events
    done = json.loads(events.split("event: done\ndata: ", 1)[1].split("\n", 1)[0])
    after = scrape()
    assert value(after, count, **route) == value(before, count, **route) + 1
    seconds = "http_server_request_duration_seconds_sum"
    assert value(after, seconds, **route) - value(before, seconds, **route) >= (
        done["timings"]["generate_ms"] / 1000
    )
