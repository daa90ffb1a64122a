"""URL map: the console under /console/, the tenant API under /api/v1/, its schema and docs;
probes (/healthz, /readyz) and Prometheus metrics (/metrics) at the root."""

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path
from django.views.defaults import bad_request, page_not_found, server_error
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from observability import views as observability
from rag.api.openai.errors import OPENAI_PREFIX
from rag.api.openai.errors import error_response as openai_error_response
from tenants.api.problems import API_PATH_PREFIXES, problem_response

urlpatterns = [
    path("", lambda request: redirect("console:home")),
    path("console/", include("console.urls")),
    path("api/v1/", include("tenants.api.urls")),
    path("api/v1/", include("rag.api.urls")),
    path("v1/", include("rag.api.openai.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("metrics", observability.metrics, name="metrics"),
]


# Django's error handlers answer programs in their own shape: OpenAI's under /v1/, problem+json
# under /api/; people get Django's pages. They never call request.get_host() (a DisallowedHost
# would be raised again).


def _api_error(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse | None:
    if request.path.startswith(OPENAI_PREFIX):
        return openai_error_response(status, code, detail)
    if request.path.startswith(API_PATH_PREFIXES):
        return problem_response(status, code, detail)
    return None


def handler400(request: HttpRequest, exception=None):
    """Requests Django refuses before any view: a Host header not in ALLOWED_HOSTS, a body
    over DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields or files (SuspiciousOperation)."""
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        status, code, detail = 413, "body_too_large", f"Bodies are limited to {limit} bytes."
    elif isinstance(exception, DisallowedHost):
        status, code, detail = 400, "invalid_host", "The Host header names no site served here."
    elif isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        status, code, detail = 400, "too_many_fields", "The request has too many fields or files."
    else:
        status, code, detail = 400, "bad_request", "The request is malformed."
    response = _api_error(request, status, code, detail)
    return response if response is not None else bad_request(request, exception)


def handler404(request: HttpRequest, exception=None):
    response = _api_error(request, 404, "not_found", "No such resource.")
    return response if response is not None else page_not_found(request, exception)


def handler500(request: HttpRequest):
    """The last resort, for an unexpected exception (a bug): never HTML to a program."""
    response = _api_error(request, 500, "server_error", "An unexpected error occurred.")
    return response if response is not None else server_error(request)
