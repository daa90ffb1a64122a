"""Generated from the URL conf and the OpenAPI schema, so a new endpoint is covered without a
new test: every tenant view derives from the tenant base, every method's scope is enforced
(HEAD and OPTIONS included), and another tenant's object id is a 404 in every mode, in the
path and in `document_ids` bodies alike."""

from __future__ import annotations

import json
import re
import uuid
from functools import cache

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from rag.models import Document
from tenants.api.base import ANY_KEY, TenantAPIView
from tenants.api.problems import API_PATH_PREFIXES
from tenants.context import tenant_context
from tenants.models import ApiKeyScope
from tests.helpers import MODES, bearer

# Public documentation of the API itself: no tenant, no data.
PUBLIC = {"api-schema", "api-docs"}
PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def _walk(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield "/" + prefix + str(p.pattern), p


@cache
def tenant_routes() -> list[tuple[str, str, type]]:
    """(route, name, view class) of every API route but the public documentation."""
    routes = []
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(API_PATH_PREFIXES) and pattern.name not in PUBLIC:
            view = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            routes.append((route, pattern.name, view))
    return routes


def _handled(view: type) -> list[str]:
    return [m.upper() for m in view.http_method_names if hasattr(view, m) and m != "options"]


def test_the_walk_finds_the_api():
    names = {name for _, name, _ in tenant_routes()}
    assert {"api-documents", "api-search", "api-answer", "openai-chat-completions"} <= names


@pytest.mark.parametrize("route,name,view", tenant_routes(), ids=lambda v: str(v))
def test_every_api_view_derives_from_the_tenant_base_and_scopes_each_method(route, name, view):
    assert isinstance(view, type) and issubclass(view, TenantAPIView), f"{route}: {view}"
    for method in _handled(view):
        if method == "HEAD":
            continue
        declared = view.scopes.get(method, view.scopes.get("*"))
        assert declared in {*ApiKeyScope.values, ANY_KEY}, f"{route} {method}: no scope"


def _allowed(view: type, method: str, scope: str) -> bool:
    """The rule, from the view's declaration: HEAD is GET, OPTIONS is any handled method."""
    if method == "OPTIONS":
        return any(_allowed(view, m, scope) for m in _handled(view) if m != "HEAD")
    declared = view.scopes.get("GET" if method == "HEAD" else method, view.scopes.get("*"))
    return declared in (ANY_KEY, scope)


def _fill(route: str) -> str:
    return PARAM.sub(lambda m: str(uuid.uuid4()), route)


def _scope_cases():
    for route, _name, view in tenant_routes():
        methods = [m for m in _handled(view) if m != "HEAD"]
        methods += ["OPTIONS"] + (["HEAD"] if "GET" in methods else [])
        for method in methods:
            for scope in ApiKeyScope.values:
                yield pytest.param(route, view, method, scope, id=f"{method} {route} {scope}")


@pytest.fixture(scope="module")
def keys_by_scope(django_db_setup, django_db_blocker):
    from tenants.services.apikeys import apikey_create
    from tenants.services.provisioning import tenant_create, tenant_delete

    with django_db_blocker.unblock():
        tenant = tenant_create(slug=f"scopes-{uuid.uuid4().hex[:8]}", mode="pool")
        keys = {s: apikey_create(tenant=tenant, scopes=[s])[1] for s in ApiKeyScope.values}
        yield keys
        tenant_delete(tenant=tenant)


@pytest.mark.parametrize("route,view,method,scope", list(_scope_cases()))
def test_every_method_checks_the_key_scope(pg, keys_by_scope, route, view, method, scope):
    response = Client().generic(
        method, _fill(route), "{}", content_type="application/json", **bearer(keys_by_scope[scope])
    )
    # A HEAD response has no body to name the reason in.
    named = method == "HEAD" or b"insufficient_scope" in response.content
    refused = response.status_code == 403 and named
    assert refused != _allowed(view, method, scope), (response.status_code, response.content)


# --- Another tenant's objects -----------------------------------------------------------------


def _document_of(tenant, make_key) -> str:
    with tenant_context(tenant):
        doc = Document.objects.create(title="theirs", content_hash=uuid.uuid4().hex * 2)
    return str(doc.pk)


def _key_of(tenant, make_key) -> str:
    from tenants.models import ApiKey

    make_key(tenant, scopes=["query"])
    return str(ApiKey.objects.filter(tenant=tenant).latest("created_at").pk)


# What each path parameter names, and how to make one for a tenant. A route with a parameter
# missing here fails the test below until its factory is added.
FACTORIES = {"document_id": _document_of, "key_id": _key_of}
ALL_SCOPES = ("ingest", "query", "admin")


def _object_routes():
    for route, _name, view in tenant_routes():
        params = [m["name"] for m in PARAM.finditer(route)]
        if params:
            for method in [m for m in _handled(view) if m != "HEAD"] + ["HEAD"] * (
                "GET" in _handled(view)
            ):
                yield route, params, method


@pytest.mark.parametrize("mode", MODES)
def test_another_tenants_object_in_the_path_is_a_404_in_every_method(mode, make_tenant, make_key):
    mine, theirs = make_tenant(mode), make_tenant(mode)
    key, their_key = make_key(mine, scopes=ALL_SCOPES), make_key(theirs, scopes=ALL_SCOPES)
    client = Client()
    cases = list(_object_routes())
    assert cases, "no route takes an object id"
    for route, params, method in cases:
        missing = [p for p in params if p not in FACTORIES]
        assert not missing, f"{route}: add a factory for {missing}"
        values = {p: FACTORIES[p](theirs, make_key) for p in params}
        path = PARAM.sub(lambda m, v=values: v[m["name"]], route)
        response = client.generic(
            method, path, "{}", content_type="application/json", **bearer(key)
        )
        assert response.status_code == 404, (method, route, response.status_code, response.content)
        assert response.content == b"" or b"not_found" in response.content
        # The id is real: its own tenant reaches it (read-only, so the next method still can).
        if method in {"GET", "HEAD"}:
            assert client.generic(method, path, **bearer(their_key)).status_code == 200


@cache
def _document_ids_operations() -> list[tuple[str, str]]:
    """(path, method) of every operation whose JSON body takes `document_ids`."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(public=True)
    components = schema["components"]["schemas"]
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            properties = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            if "document_ids" in properties:
                found.append((path, method.upper()))
    return found


@pytest.mark.parametrize("mode", MODES)
def test_another_tenants_document_in_document_ids_is_a_404(mode, make_tenant, make_key):
    operations = _document_ids_operations()
    assert {p for p, _ in operations} >= {"/api/v1/search", "/api/v1/answer"}
    mine, theirs = make_tenant(mode), make_tenant(mode)
    key = make_key(mine, scopes=ALL_SCOPES)
    own = _document_of(mine, make_key)
    other = _document_of(theirs, make_key)
    client = Client()
    for path, method in operations:
        for extra in ({}, {"stream": True}) if path.endswith("answer") else ({},):
            body = {"query": "x", "question": "x", "document_ids": [own, other], **extra}
            response = client.generic(
                method, path, json.dumps(body), content_type="application/json", **bearer(key)
            )
            assert response.status_code == 404, (path, extra, response.content)
            assert b"not_found" in response.content
