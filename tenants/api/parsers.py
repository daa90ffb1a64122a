"""The API's JSON: bounded in size, nesting and numbers, and storable by PostgreSQL.

Python's json module accepts what the API cannot use: `NaN` and `Infinity`, numbers that
overflow to infinity (`1e400`), `\\u0000` and lone surrogates (PostgreSQL text and jsonb cannot
hold them) and any
nesting (the decoder recurses and raises RecursionError at about 1,000 levels, a 500). DRF's
JSONParser also reads the whole body first, up to DATA_UPLOAD_MAX_MEMORY_SIZE, which is sized
for document uploads (21 MiB). `StrictJSONParser` refuses all of these before any view or
serializer runs: 413 `body_too_large` over API_JSON_MAX_BYTES (from the Content-Length header,
before the body is read), 400 `invalid_json` otherwise. `strict_loads` applies the same rules
to JSON carried inside a value (a multipart field, a query parameter).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework.parsers import BaseParser, get_encoding
from rest_framework.renderers import JSONRenderer

from .problems import Problem

MAX_DEPTH = 64

# A JSON string, escapes included, matched without backtracking (the "unrolled loop" form).
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# `\u0000` preceded by an even number of backslashes (`\\u0000` is a backslash, then "u0000").
NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class InvalidJSON(ValueError):
    """JSON the API refuses; the message says why."""


def strict_loads(text: str) -> Any:
    """`json.loads` under the API's rules, or InvalidJSON naming the problem."""
    if too_deep(text):
        raise InvalidJSON(f"JSON is nested deeper than {MAX_DEPTH} levels.")
    if "\\u0000" in text and NUL_ESCAPE.search(text):
        raise InvalidJSON("Strings must not contain \\u0000.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except InvalidJSON:
        raise
    except ValueError as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise InvalidJSON(f"Malformed JSON: {exc}") from None
    if SURROGATE_ESCAPE.search(text) and not _encodable(value):
        raise InvalidJSON("Strings must be valid Unicode (no lone surrogate such as \\ud800).")
    return value


def _encodable(value: Any) -> bool:
    """Whether every string in `value` encodes to UTF-8: a lone surrogate (`\\ud800`) decodes
    into a str that cannot, so PostgreSQL could not be sent it either."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def too_deep(text: str) -> bool:
    """Whether arrays and objects in `text` nest deeper than MAX_DEPTH, counted without
    recursion. Brackets inside strings do not count; malformed text gets some answer (the
    decoder refuses it afterwards anyway)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # most bodies: too few brackets to nest that deep, no scan needed
    brackets = NOT_BRACKET.sub("", STRING.sub("", text))
    return max(accumulate(map(STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def _refuse_constant(name: str):
    raise InvalidJSON(f"{name} is not a JSON number.")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise InvalidJSON(f"The number {literal[:40]} is out of range.")
    return value


class StrictJSONParser(BaseParser):
    """The API's `application/json` parser (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES).

    A BaseParser, not a JSONParser subclass: DRF reads the whole body into memory before
    calling a JSONParser, and this one must look at the size first.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer
    # The setting holding the largest body, in bytes: a view taking larger JSON (a document
    # with its text) can use a subclass naming another.
    limit_setting = "API_JSON_MAX_BYTES"

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = getattr(settings, self.limit_setting)
        request = parser_context.get("request")
        if request is not None and _declared_length(request) > limit:
            raise _too_large(limit)
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise _too_large(limit)
        try:
            text = body.decode(get_encoding(parser_context))
        except UnicodeDecodeError as exc:
            raise Problem(400, "invalid_json", f"The body is not valid text: {exc}.") from None
        try:
            return strict_loads(text)
        except InvalidJSON as exc:
            raise Problem(400, "invalid_json", str(exc)) from None


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _too_large(limit: int) -> Problem:
    return Problem(413, "body_too_large", f"JSON bodies are limited to {limit} bytes.")
