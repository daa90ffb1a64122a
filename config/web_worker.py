"""gunicorn's gthread worker, with request heads read by its event loop instead of a thread.

gthread hands a connection to a pool thread as soon as its first byte arrives, and the thread
then blocks reading the rest of the head. Eight clients sending a header byte every 2 s held
all eight threads and the service answered no one ("slowloris"). Here the worker's poller
(its main thread, which already waits on idle keep-alive connections) gathers each head
without blocking, and a thread gets the connection only once the head is complete; a head
unfinished after WEB_HEAD_TIMEOUT seconds is answered 408 and closed. Slow clients then cost a
socket each, not a thread.

Once a request is in a thread, its socket reads and writes time out after WEB_IO_TIMEOUT
seconds of silence, so a body trickled (or a response read) too slowly ends too. Bodies are
read only by views that accept them, after authentication, quotas and the size checks.

Production deployments may still put a buffering proxy in front (README, "Production front
end"); this is what keeps the server itself standing without one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import time

from gunicorn import http, util
from gunicorn.workers import gthread

HEAD_TIMEOUT_SECONDS = float(os.environ.get("WEB_HEAD_TIMEOUT", "10"))
IO_TIMEOUT_SECONDS = float(os.environ.get("WEB_IO_TIMEOUT", "30"))
END_OF_HEAD = b"\r\n\r\n"
_TIMEOUT_BODY = json.dumps(
    {
        "type": "https://tenantry.dev/problems/request_timeout",
        "title": "Request Timeout",
        "status": 408,
        "detail": f"The request head did not arrive within {HEAD_TIMEOUT_SECONDS:g} s.",
        "code": "request_timeout",
    }
).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/problem+json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


# Requests gunicorn refuses before the app sees them (a request line over limit_request_line,
# too many or too large headers, a malformed request line): problem+json like every other
# refusal, where gunicorn writes an HTML page.
_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "server_error",
    501: "not_implemented",
}


def write_problem(sock, status_int, reason, mesg):
    """gunicorn.util.write_error's signature, problem+json's shape."""
    code = _CODES.get(status_int, "bad_request")
    body = json.dumps(
        {
            "type": f"https://tenantry.dev/problems/{code}",
            "title": reason,
            "status": status_int,
            "detail": mesg or reason,
            "code": code,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class Conn(gthread.TConn):
    """A connection whose head is gathered by the poller (`head`) before a thread runs it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.head = bytearray()
        self.head_deadline = 0.0
        self.head_ready = False

    def init(self):
        super().init()
        # In a thread: blocking, but never forever (init runs before each request).
        self.sock.settimeout(IO_TIMEOUT_SECONDS)


class HeadBufferingWorker(gthread.ThreadWorker):
    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError("HeadBufferingWorker serves plain HTTP; terminate TLS in front")

    def init_process(self):
        self.heads: dict[Conn, float] = {}
        # The base worker writes its refusals through this module function.
        util.write_error = write_problem
        super().init_process()

    def accept(self, listener):
        try:
            sock, address = listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.ECONNABORTED:
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(Conn(self.cfg, sock, address, listener.getsockname()))

    def enqueue_req(self, conn):
        """Every way into a thread passes here (a new connection, a kept-alive one that became
        readable, bytes read ahead into the next request): only complete heads go on."""
        if conn.head_ready:
            conn.head_ready = False
            conn.data_ready = True
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        if conn.parser is not None:  # kept alive: what was read ahead starts the next head
            conn.head = bytearray(conn.parser.unreader.take_buffered())
        if self._head_complete(conn):
            self._hand_over(conn)
            return
        conn.head_deadline = time.monotonic() + HEAD_TIMEOUT_SECONDS
        self.heads[conn] = conn.head_deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, lambda _: self._read_head(conn))

    def _read_head(self, conn):
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(conn)
            return
        conn.head += data
        if self._head_complete(conn):
            self.poller.unregister(conn.sock)
            del self.heads[conn]
            self._hand_over(conn)

    def _head_complete(self, conn) -> bool:
        # Past the largest head gunicorn accepts, its parser answers (431/400), not we.
        limit = self.cfg.limit_request_line + self.cfg.limit_request_fields * (
            self.cfg.limit_request_field_size + 2
        )
        return END_OF_HEAD in conn.head or len(conn.head) > limit

    def _hand_over(self, conn):
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.head))
        conn.head = bytearray()
        conn.head_ready = True
        self.enqueue_req(conn)

    def _drop(self, conn, answer: bytes = b""):
        self.poller.unregister(conn.sock)
        del self.heads[conn]
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """Also close heads past their deadline, and every unfinished head once the worker is
        stopping (no request has started on them)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.heads.items()):
            if deadline <= now or not self.alive:
                self._drop(conn, REQUEST_TIMEOUT if conn.head and self.alive else b"")
