"""`/healthz`, `/readyz` and `/metrics`.

The two probes take no authentication (load balancers call them) and say nothing but which
checks passed; the reasons of a failure go to the log. `/metrics` needs `Authorization: Bearer
<METRICS_TOKEN>` or a staff console session; with no METRICS_TOKEN set, only a staff session.
Tenant API keys never open it: it shows every tenant's traffic.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving. Touches nothing else (no database)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis and both models are usable; 503 naming what is not."""
    ready, results = health.readiness()
    checks = {name: r["detail"] if r["ok"] else "failed" for name, r in results.items()}
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    if not ready:
        body["failed"] = [name for name, r in results.items() if not r["ok"]]
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_ENABLED:
        return JsonResponse({"detail": "Metrics are disabled."}, status=404)
    if not _may_read_metrics(request):
        response = JsonResponse(
            {"detail": "Metrics need `Authorization: Bearer <METRICS_TOKEN>` or a staff login."},
            status=401 if settings.METRICS_TOKEN else 403,
        )
        if settings.METRICS_TOKEN:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from .metrics import exposition

    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        offered = header.removeprefix("Bearer ").strip()
        if hmac.compare_digest(offered.encode(), token.encode()):
            return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)
