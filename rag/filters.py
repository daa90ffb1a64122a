"""Metadata filters for search and listing, compiled to SQL with bound parameters only.

Grammar (a JSON object; all conditions must hold):
    {"lang": "en"}                          equality (string, number, boolean)
    {"tag": {"in": ["a", "b"]}}             membership
    {"year": {"gte": 2020, "lt": 2025}}     numeric range (gt, gte, lt, lte)
    {"date": {"gte": "2024-01-01"}}         date range on ISO dates (YYYY-MM-DD[THH:MM:SS])
Anything else is a FilterError naming the problem (the API answers 422).

Values are checked before they reach PostgreSQL, whatever route brought them (the API decodes
JSON strictly, but the console, commands and Python callers hand over Python values): NaN,
infinities, NUL characters and lone surrogates would each fail the `::jsonb` cast, a 500.
Keys are matched whole against KEY and are the only text written into the SQL (inside a
jsonpath literal), so a key carrying quotes or `);--` is refused, never run.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime

KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # fullmatch: `$` would pass "key\n"
RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_CONDITIONS = 20
MAX_IN_VALUES = 100
_SURROGATE = re.compile("[\ud800-\udfff]")


class FilterError(ValueError):
    """A filter the API cannot run; the message says which key and why."""


def text_problem(text: str) -> str | None:
    """Why PostgreSQL text or jsonb cannot hold `text`, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    if _SURROGATE.search(text):
        return "is not valid Unicode (a lone surrogate)"
    return None


def number_problem(value) -> str | None:
    """Why jsonb cannot hold `value` (NaN and the infinities are not JSON numbers), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a JSON number"
    return None


def compile_filters(filters: dict | None, *, column: str) -> tuple[list[str], list]:
    """SQL conditions (to AND together) on the jsonb `column`, and their parameters."""
    if filters is None:
        return [], []
    if not isinstance(filters, dict):
        raise FilterError("`filter` must be a JSON object of metadata conditions.")
    if len(filters) > MAX_CONDITIONS:
        raise FilterError(f"At most {MAX_CONDITIONS} filter conditions.")
    clauses: list[str] = []
    params: list = []
    for key, condition in filters.items():
        if not isinstance(key, str) or not KEY.fullmatch(key):
            shown = key[:64] if isinstance(key, str) else key
            raise FilterError(
                f"Invalid metadata key {shown!r}: use up to 64 letters, digits, '_', '.', '-'."
            )
        if _is_scalar(condition):
            _check_value(key, condition)
            clauses.append(f"{column} @> %s::jsonb")
            params.append(json.dumps({key: condition}))
        elif isinstance(condition, dict) and condition:
            _operators(key, condition, column, clauses, params)
        else:
            raise FilterError(f"Filter on {key!r} must be a value or an operator object.")
    return clauses, params


def _operators(key: str, condition: dict, column: str, clauses: list, params: list) -> None:
    for op, value in condition.items():
        if op == "in":
            if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
                raise FilterError(f"`in` on {key!r} needs a non-empty list of values.")
            if len(value) > MAX_IN_VALUES:
                raise FilterError(f"`in` on {key!r} takes at most {MAX_IN_VALUES} values.")
            for item in value:
                _check_value(key, item)
            clauses.append(f"{column} -> %s <@ %s::jsonb")
            params.extend([key, json.dumps(value)])
            # `->` then `<@` on an array would match sub-arrays; require a scalar on the row.
            clauses.append(f"jsonb_typeof({column} -> %s) IN ('string', 'number', 'boolean')")
            params.append(key)
        elif op in RANGE_OPS:
            _range(key, op, value, column, clauses, params)
        else:
            raise FilterError(f"Unknown operator {op!r} on {key!r}: use in, gt, gte, lt, lte.")


def _range(key: str, op: str, value, column: str, clauses: list, params: list) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FilterError(f"`{op}` on {key!r} needs a number or an ISO date.")
    _check_value(key, value)
    if isinstance(value, str) and not _is_iso_date(value):
        raise FilterError(f"`{op}` on {key!r}: {value[:40]!r} is not a number or an ISO date.")
    # jsonpath compares like with like: a string row value never matches a number bound.
    clauses.append(f"jsonb_path_exists({column}, %s::jsonpath, jsonb_build_object('v', %s::jsonb))")
    params.extend([f'$."{key}" ? (@ {RANGE_OPS[op]} $v)', json.dumps(value)])


def _check_value(key: str, value) -> None:
    problem = text_problem(value) if isinstance(value, str) else number_problem(value)
    if problem:
        raise FilterError(f"The value compared with {key!r} {problem}.")


def _is_scalar(value) -> bool:
    return isinstance(value, str | int | float | bool)


def _is_iso_date(value: str) -> bool:
    try:
        (datetime if "T" in value else date).fromisoformat(value)
    except ValueError:
        return False
    return True
