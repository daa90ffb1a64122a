"""The load section's checks after the run: did every accepted upload end ready, and was
every 429 one that the tenant's quotas called for?"""

from __future__ import annotations

import time

QUOTA_OF = {"search": "search_per_hour", "answer": "answer_per_hour", "upload": "ingest_per_hour"}
KIND_OF = {"search": "search", "answer": "answer", "upload": "ingest"}


def wait_ingested(population: list[dict], accepted: dict, timeout: float = 300) -> dict:
    """Every accepted (202) upload, followed until it is ready or failed (or the time is up)."""
    from rag.models import Document, DocumentStatus
    from tenants.context import tenant_context

    tenants = {p["slug"]: p["tenant"] for p in population}
    statuses: dict[str, str] = {}
    started = time.monotonic()
    while True:
        for slug, ids in accepted.items():
            with tenant_context(tenants[slug]):
                rows = Document.objects.filter(pk__in=ids).values_list("pk", "status")
                statuses.update({str(pk): status for pk, status in rows})
        done = (DocumentStatus.READY, DocumentStatus.FAILED)
        pending = [i for ids in accepted.values() for i in ids if statuses.get(i) not in done]
        if not pending or time.monotonic() - started > timeout:
            break
        time.sleep(0.5)
    total = sum(len(ids) for ids in accepted.values())
    ready = sum(status == DocumentStatus.READY for status in statuses.values())
    return {
        "accepted": total,
        "ready": ready,
        "failed": sum(status == DocumentStatus.FAILED for status in statuses.values()),
        "pending": len(pending),
        "lost": total - ready,
        "ready_within_s": round(time.monotonic() - started, 1),
    }


def check_refusals(population: list[dict], driven: dict) -> dict:
    """Each 429 against what the quotas say: an hourly refusal is expected only from a tenant
    whose quota of that kind is tight and whose counter (the server's, in PostgreSQL) reached
    it; a concurrent-generation refusal only while the tenant had that many answers in flight
    (counted by the driver)."""
    from tenants.models import RequestCounter
    from tenants.services.quotas import METERING_DB

    by_slug = {p["slug"]: p for p in population}
    expected = unexpected = 0
    rows = []
    for r in driven["refusals"]:
        p = by_slug[r["tenant"]]
        if r["kind"] == "concurrent":
            ok = r["count"]  # the driver counts the unexplained ones below
        else:
            limit = p["tight"].get(QUOTA_OF[r["endpoint"]])
            reached = (
                RequestCounter.objects.using(METERING_DB)
                .filter(tenant_id=p["tenant"].pk, kind=KIND_OF[r["endpoint"]], count__gte=limit)
                .exists()
                if limit
                else False
            )
            ok = r["count"] if reached else 0
        expected += ok
        unexpected += r["count"] - ok
        admitted = sum(
            n for s, n in driven["by_tenant"][r["tenant"]][r["endpoint"]].items() if s[0] == "2"
        )
        rows.append({**r, "mode": p["mode"], "tight": p["tight"], "admitted": admitted})
    concurrent = driven["unexplained_concurrent_429"]
    return {
        "total": expected + unexpected,
        "expected": expected - concurrent,
        "unexpected": unexpected + concurrent,
        "by_tenant": rows,
    }
