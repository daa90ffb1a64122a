"""Server-Sent Events for streamed answers.

The stream is an object, not a bare generator, because Django closes a streaming response's
content when the client goes away or the response ends, and `close()` must release the
generation slot and gate even if iteration never started (a generator's `finally` would not
run then).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator

from django.http import StreamingHttpResponse

from tenants.api.problems import problem_body

logger = logging.getLogger(__name__)


def sse_event(data, event: str | None = None) -> bytes:
    """One event; `data` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n").encode()


class EventStream:
    """Iterates `events()`; on any failure mid-stream emits `on_error(exc)` as a last event."""

    def __init__(
        self,
        events: Callable[[], Iterable[bytes]],
        *,
        close: Callable[[], None],
        on_error: Callable[[Exception], bytes],
    ):
        self._events = events
        self._close = close
        self._on_error = on_error

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._events()
        except Exception as exc:
            logger.exception("stream failed")
            yield self._on_error(exc)
        finally:
            self.close()

    def close(self) -> None:
        self._close()


def sse_response(stream: EventStream, headers: dict[str, str] | None = None):
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must pass each token on at once
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def answer_sse_response(session, headers: dict[str, str] | None = None):
    """A started answer session as an event stream: a `delta` event per piece of text, then one
    `done` event with the result; a failure mid-stream ends it with an `error` event carrying a
    problem body. The API and the console playground both stream answers through this, so
    their clients read the same events."""

    def events():
        for delta in session.deltas():
            yield sse_event({"text": delta}, event="delta")
        yield sse_event(session.result(), event="done")

    def on_error(exc: Exception) -> bytes:
        body = problem_body(500, "generation_failed", "Generation failed; try again.")
        return sse_event(body, event="error")

    return sse_response(EventStream(events, close=session.close, on_error=on_error), headers)
