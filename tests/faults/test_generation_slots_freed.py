"""A generation's concurrency slot comes back within seconds when its holder goes away: the
client that disconnects mid-stream, and the web worker killed (SIGKILL) mid-generation. The
lease is short (the default GENERATION_LEASE_SECONDS) and only renewed while the generation
runs."""

import http.client
import json
import os
import signal
import socket
from urllib.parse import urlsplit

from django.conf import settings

from tests.faults.stack import long_text
from tests.helpers import wait_until


def _open_stream(stack) -> http.client.HTTPConnection:
    """Start a streamed answer and read until the first text delta; returns the connection."""
    url = urlsplit(stack.web.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    # annotate: every token streams as generated (strict sends checked sentences only).
    body = {
        "question": "What does the lighthouse log note?",
        "stream": True,
        "max_tokens": 400,
        "policy": "annotate",
    }
    conn.request(
        "POST",
        "/api/v1/answer",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200, response.read()
    while True:
        line = response.fp.readline()
        assert line, "the stream ended before its first delta"
        if line.startswith(b"event: delta"):
            return conn


def _ensure_sources(stack) -> None:
    status, _, doc, _ = stack.call("POST", "/api/v1/documents", {"text": long_text(3, "gen")})
    assert status in (200, 202), doc
    stack.wait_ready(doc["id"])


def test_a_client_that_disconnects_mid_stream_frees_the_slot(stack):
    _ensure_sources(stack)
    conn = _open_stream(stack)
    assert stack.generations_running() == 1
    # The client goes away (shutdown: the response's file object would keep a plain close
    # from closing the socket); the server learns it on its next write.
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    wait_until(
        lambda: stack.generations_running() == 0,
        timeout=5,  # released by the stream's close, well before the lease would expire
        interval=0.2,
        message="the slot was not given back after the client left",
    )


def test_a_web_worker_killed_mid_generation_frees_the_slot(stack):
    _ensure_sources(stack)
    conn = _open_stream(stack)
    assert stack.generations_running() == 1
    for pid in stack.web_worker_pids():
        os.kill(pid, signal.SIGKILL)
    conn.close()
    # Nobody releases it: the lease, no longer renewed, expires.
    wait_until(
        lambda: stack.generations_running() == 0,
        timeout=settings.GENERATION_LEASE_SECONDS + 5,
        interval=0.5,
        message="the killed worker's slot was still held",
    )
    # gunicorn starts a new worker, which serves again.
    stack.wait_serving(timeout=120, message="no web worker came back")
