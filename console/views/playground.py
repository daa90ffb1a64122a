"""The playground: ask a tenant's documents a question and watch the answer stream in.

The answer comes from `answer_prepare(...).start()`, as for the API, streamed with the API's
Server-Sent Events (`delta` events, then `done` with citations, usage and timings). Console
requests take no hourly quota, but the session records usage and the query log (source
"console") like any other answer. Refusals are problem+json bodies the page's script shows.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe

from rag.api.sse import answer_sse_response
from rag.filters import FilterError
from rag.generation.gate import GeneratorBusy
from rag.services.answer import answer_prepare
from tenants.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from tenants.services.provisioning import TenantNotActive
from tenants.services.quotas import QuotaExceeded

from ..decorators import staff_only, staff_tenant
from ..forms.dataplane import AskForm, PlaygroundForm


@staff_only
@require_safe
def playground(request):
    form = PlaygroundForm(initial={"tenant": request.GET.get("tenant") or None})
    has_tenants = form.fields["tenant"].queryset.exists()
    context = {"form": form, "nav": "playground", "has_tenants": has_tenants}
    return render(request, "console/rag/playground.html", context)


@staff_tenant
@require_POST
def ask(request, tenant):
    form = AskForm(request.POST)
    if not form.is_valid():
        errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
        return _problem(422, "invalid_request", "Check the highlighted fields.", errors=errors)
    try:
        session = answer_prepare(
            tenant=tenant,
            question=form.cleaned_data["question"],
            k=form.cleaned_data["k"],
            max_tokens=form.cleaned_data["max_tokens"],
            policy=form.cleaned_data["policy"] or None,
            source="console",
        )
    except FilterError as exc:
        return _problem(422, "invalid_filter", str(exc))
    except TenantNotActive as exc:
        return _problem(409, "tenant_not_active", str(exc))
    try:
        session.start()
    except QuotaExceeded as exc:
        session.close()
        return _problem(exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)
    except GeneratorBusy as exc:
        session.close()
        headers = {"Retry-After": str(exc.retry_after)}
        return _problem(503, "generator_busy", str(exc), headers=headers)

    return answer_sse_response(session)


def _problem(status: int, code: str, detail: str, headers=None, **extra) -> JsonResponse:
    response = JsonResponse(
        problem_body(status, code, detail, **extra),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response
