"""Two generations at once through a real gunicorn: both complete (they take turns on the
model), and each stream is whole."""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import sse_events

ZOO = "# Zoo\n\nThe zebras eat meadow hay. The penguins eat herring every morning."


def post(url: str, key: str, body: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        return response.status, response.read()


def test_two_simultaneous_generations_both_complete(
    web_server, make_tenant, make_key, upload, wait_done, worker
):
    key = make_key(make_tenant("pool"))
    assert wait_done(key, upload(key, text=ZOO).json()["id"])["status"] == "ready"
    url = web_server.url + "/api/v1/answer"
    bodies = [
        {"question": "What do the zebras eat?", "max_tokens": 24, "cache": False},
        {"question": "What do the penguins eat?", "max_tokens": 24, "stream": True},
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        (plain_status, plain), (stream_status, stream) = pool.map(
            lambda body: post(url, key, body), bodies
        )
    assert plain_status == stream_status == 200
    answer = json.loads(plain)
    assert answer["answer"].strip() and answer["usage"]["completion_tokens"] > 0
    events = sse_events(stream)
    assert events[-1][0] == "done" and {name for name, _ in events[:-1]} == {"delta"}
    done = events[-1][1]
    assert "".join(data["text"] for _, data in events[:-1]) == done["answer"]
    assert done["answer"].strip()
