"""URL map: the console under /console/, the tenant API under /api/v1/, its schema and docs;
probes (/healthz, /readyz) and Prometheus metrics (/metrics) at the root."""

from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import include, path
from django.views.defaults import page_not_found, server_error
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from observability import views as observability
from tenants.api.problems import problem_response

API_PREFIXES = ("/api/", "/v1/")

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


def handler404(request: HttpRequest, exception=None):
    if request.path.startswith(API_PREFIXES):
        return problem_response(404, "not_found", "No such resource.")
    return page_not_found(request, exception)


def handler500(request: HttpRequest):
    if request.path.startswith(API_PREFIXES):
        return problem_response(500, "server_error", "An unexpected error occurred.")
    return server_error(request)
