"""The web worker (config/web_worker.py) on the real gunicorn. Slow clients: a connection
trickling its request head (one byte every second, "slowloris") or sending nothing must not
take a thread from everyone else. Refusals before the app: problem+json, not HTML.

Before config/web_worker.py, sixteen such connections (one per thread) made the service
unresponsive: gunicorn's gthread worker reads a request head in a pool thread, blocking.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40


def _trickle(port: int, stop: threading.Event, closed: list) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(1)
        for byte in HEAD:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed.append(True)  # the server hung up on us
                return
            stop.wait(1)


def test_slowloris_does_not_starve_the_server(web_server):
    port = web_server.port
    stop, closed = threading.Event(), []
    attackers = [
        threading.Thread(target=_trickle, args=(port, stop, closed), daemon=True)
        for _ in range(web_server.threads * 3)
    ]
    for attacker in attackers:
        attacker.start()
    try:
        time.sleep(2)  # every attacker connected and holds a partial head
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            with urllib.request.urlopen(web_server.url + "/healthz", timeout=5) as response:  # noqa: S310
                assert response.status == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.5)
        assert max(latencies) < 1.5, latencies
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(timeout=5)


def test_a_head_that_never_ends_is_cut_off(web_server):
    """A client may not keep a connection open forever by never finishing its head: it gets
    408 after WEB_HEAD_TIMEOUT (10 s by default) and the connection is closed."""
    with socket.create_connection(("127.0.0.1", web_server.port)) as sock:
        started = time.monotonic()
        for byte in HEAD[:5]:  # a trickle, then silence (bytes still arriving when the
            sock.sendall(bytes([byte]))  # server closes would turn its close into a reset)
            time.sleep(1)
        sock.settimeout(25)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"code": "request_timeout"' in received
    assert 9 <= elapsed < 15, elapsed


def test_refusals_before_the_app_are_problem_json(web_server):
    """A request line over gunicorn's limit never reaches Django; its 414 still says why in
    the API's shape."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(web_server.url + "/api/v1/documents?q=" + "a" * 5000, timeout=10)  # noqa: S310
    assert refused.value.code == 414
    assert refused.value.headers["Content-Type"] == "application/problem+json"
    problem = json.loads(refused.value.read())
    assert problem["status"] == 414 and problem["code"] == "uri_too_long"
