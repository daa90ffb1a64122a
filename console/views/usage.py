"""Usage: requests and tokens per hour for 7 days (chart and table), and quota headroom
(token budgets per model included)."""

from __future__ import annotations

from datetime import date, timedelta

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from tenants.models import UsageKind
from tenants.services.usage import usage_series, usage_summary

from ..decorators import staff_tenant
from ..meters import meter

HOURS = 168
KINDS = [kind.value for kind in UsageKind]
TOKENS = ("prompt_tokens", "completion_tokens", "embedding_tokens")


@staff_tenant
@require_safe
def usage(request, tenant):
    summary = usage_summary(tenant=tenant)
    hours, chart = _hourly(usage_series(tenant=tenant, hours=HOURS))
    context = {
        "tenant": tenant,
        "tab": "usage",
        "nav": "tenants",
        "summary": summary,
        "headroom": _headroom(summary),
        "chart": chart,
        "days": _daily(hours),
        "kinds": [(kind.value, kind.label) for kind in UsageKind],
    }
    return render(request, "console/rag/usage.html", context)


def _hourly(rows: list[dict]) -> tuple[list[dict], dict]:
    """Every hour of the window (hours without use are zeros) and the chart's data."""
    latest = max(
        [timezone.now().replace(minute=0, second=0, microsecond=0), *(r["hour"] for r in rows)]
    )
    hours = [
        {"hour": latest - timedelta(hours=n), **dict.fromkeys(KINDS, 0), **dict.fromkeys(TOKENS, 0)}
        for n in reversed(range(HOURS))
    ]
    index = {bucket["hour"]: bucket for bucket in hours}
    for row in rows:
        bucket = index.get(row["hour"])
        if bucket is None:
            continue
        bucket[row["kind"]] += row["requests"] or 0
        for name in TOKENS:
            bucket[name] += row[name] or 0
    chart = {
        "labels": [b["hour"].strftime("%a %H:00") for b in hours],
        "requests": {kind: [b[kind] for b in hours] for kind in KINDS},
        "tokens": [sum(b[name] for name in TOKENS) for b in hours],
    }
    return hours, chart


def _daily(hours: list[dict]) -> list[dict]:
    """The same numbers per UTC day, newest first (the chart's accessible form)."""
    days: dict[date, dict] = {}
    for bucket in hours:
        day = days.setdefault(
            bucket["hour"].date(),
            {"date": bucket["hour"].date(), **dict.fromkeys(KINDS, 0), **dict.fromkeys(TOKENS, 0)},
        )
        for name in (*KINDS, *TOKENS):
            day[name] += bucket[name]
    for day in days.values():
        day["requests"] = [day[kind] for kind in KINDS]
        day["total_tokens"] = sum(day[name] for name in TOKENS)
    return sorted(days.values(), key=lambda d: d["date"], reverse=True)


def _headroom(summary: dict) -> list[dict]:
    rows = []
    for kind, label in UsageKind.choices:
        hour = summary["requests"][kind]
        note = f"this hour; resets at {hour['reset']:%H:%M} UTC"
        rows.append(meter(label, hour["used"], hour["limit"], note=note))
    rows.append(meter("Documents", summary["documents"]["used"], summary["documents"]["limit"]))
    storage = summary["storage_bytes"]
    rows.append(meter("Storage", storage["used"], storage["limit"], in_bytes=True))
    running = summary["concurrent_generations"]
    rows.append(meter("Generations running", running["running"], running["limit"]))
    rows.extend(_token_meters(summary["token_budgets"]))
    return rows


def _token_meters(budgets: dict) -> list[dict]:
    """Prompt + generated tokens against the hourly and daily budgets, one pair per model used
    in the current windows (a pair at zero before any model is)."""
    notes = {
        "hour": f"this hour; resets at {budgets['hour_reset']:%H:%M} UTC",
        "day": f"today (UTC); resets at {budgets['day_reset']:%Y-%m-%d %H:%M} UTC",
    }
    models = budgets["models"] or [
        {
            "model": "each model",
            "hour": {"used": 0, "limit": budgets["tokens_per_hour"]},
            "day": {"used": 0, "limit": budgets["tokens_per_day"]},
        }
    ]
    rows = []
    for row in models:
        for period in ("hour", "day"):
            window = row[period]
            label = f"Tokens per {period} · {row['model']}"
            rows.append(meter(label, window["used"], window["limit"], note=notes[period]))
    return rows
