"""API keys: hashed at rest, refused when revoked, expired, out of scope or in the URL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import ApiKey
from tenants.services.apikeys import apikey_revoke
from tests.helpers import MODES, bearer, connect

PROBLEM = "application/problem+json"


def _problem(response, status: int, code: str):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith("/" + code)
    return body


def test_no_plaintext_key_is_stored(make_tenant, make_key):
    tenant = make_tenant("pool")
    raw = make_key(tenant)
    secret = raw.split("_", 2)[2]
    with connect("owner") as conn:
        dump = "\n".join(str(row) for row in conn.execute("SELECT * FROM tenants_apikey"))
    assert raw not in dump and secret not in dump
    assert ApiKey.objects.get(tenant=tenant).prefix == raw[:16]


@pytest.mark.parametrize("mode", MODES)
def test_tenant_endpoint_answers_with_the_callers_tenant(make_tenant, make_key, api, mode):
    tenant = make_tenant(mode, name="Acme")
    response = api.get("/api/v1/tenant", **bearer(make_key(tenant, scopes=["query"])))
    assert response.status_code == 200
    assert response.json() == {
        "slug": tenant.slug,
        "name": "Acme",
        "mode": mode,
        "status": "active",
        "scopes": ["query"],
    }


def test_missing_and_unknown_keys_get_401(make_tenant, make_key, api):
    tenant = make_tenant("pool")
    raw = make_key(tenant)
    body = _problem(api.get("/api/v1/tenant"), 401, "not_authenticated")
    assert "Authorization" in body["detail"]
    assert api.get("/api/v1/tenant")["WWW-Authenticate"].startswith("Bearer")
    _problem(api.get("/api/v1/tenant", **bearer(raw[:-2] + "xx")), 401, "invalid_api_key")
    _problem(api.get("/api/v1/tenant", **bearer("tnt_000000000000_nope")), 401, "invalid_api_key")


def test_revoked_key_gets_401(make_tenant, make_key, api):
    raw = make_key(make_tenant("bridge"))
    assert api.get("/api/v1/tenant", **bearer(raw)).status_code == 200
    apikey_revoke(prefix_or_id=raw[:16])
    _problem(api.get("/api/v1/tenant", **bearer(raw)), 401, "api_key_revoked")


def test_expired_key_gets_401(make_tenant, make_key, api):
    raw = make_key(make_tenant("pool"), expires_in_days=1)
    assert api.get("/api/v1/tenant", **bearer(raw)).status_code == 200
    ApiKey.objects.filter(prefix=raw[:16]).update(expires_at=timezone.now() - timedelta(seconds=1))
    _problem(api.get("/api/v1/tenant", **bearer(raw)), 401, "api_key_expired")


def test_missing_scope_gets_403(make_tenant, make_key, api):
    raw = make_key(make_tenant("pool"), scopes=["query"])
    _problem(api.get("/api/v1/keys", **bearer(raw)), 403, "insufficient_scope")


@pytest.mark.parametrize("param", ["api_key", "token", "anything"])
def test_key_in_query_string_is_refused(make_tenant, make_key, api, param):
    raw = make_key(make_tenant("pool"))
    _problem(
        api.get(f"/api/v1/tenant?{param}={raw}", **bearer(raw)), 401, "api_key_in_query_string"
    )


def test_suspended_tenant_is_refused_with_403_and_resumed_tenant_is_served(
    make_tenant, make_key, api
):
    from tenants.services.provisioning import tenant_resume, tenant_suspend

    tenant = make_tenant("silo")
    raw = make_key(tenant)
    tenant_suspend(tenant=tenant)
    _problem(api.get("/api/v1/tenant", **bearer(raw)), 403, "tenant_suspended")
    tenant_resume(tenant=tenant)
    assert api.get("/api/v1/tenant", **bearer(raw)).status_code == 200


def test_last_used_at_is_written_at_most_once_per_resolution(make_tenant, make_key, api):
    raw = make_key(make_tenant("pool"))
    assert ApiKey.objects.get(prefix=raw[:16]).last_used_at is None
    api.get("/api/v1/tenant", **bearer(raw))
    first = ApiKey.objects.get(prefix=raw[:16]).last_used_at
    assert first is not None
    api.get("/api/v1/tenant", **bearer(raw))
    assert ApiKey.objects.get(prefix=raw[:16]).last_used_at == first
    ApiKey.objects.filter(prefix=raw[:16]).update(last_used_at=first - timedelta(minutes=5))
    api.get("/api/v1/tenant", **bearer(raw))
    assert ApiKey.objects.get(prefix=raw[:16]).last_used_at > first - timedelta(minutes=5)


def _row(obj) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


def test_the_key_lookup_loads_what_the_orm_would(make_tenant, make_key, server_b):
    """key_by_prefix builds its statement once per process; what it loads is what
    select_related("tenant__server") loads, for a tenant on the platform's server and one on a
    registered server (read after `tenant.server` is set, so no query is left to run)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tenants.models import Tenant
    from tenants.services.apikeys import key_by_prefix

    here, there = make_tenant("pool"), make_tenant("pool")
    Tenant.objects.filter(pk=there.pk).update(server=server_b)
    try:
        for tenant in (here, there):
            prefix = make_key(tenant, scopes=["query"])[:16]
            expected = ApiKey.objects.select_related("tenant__server").get(prefix=prefix)
            with CaptureQueriesContext(connection) as queries:
                key = key_by_prefix(prefix)
                server = key.tenant.server
            assert len(queries) == 1
            assert _row(key) == _row(expected)
            assert _row(key.tenant) == _row(expected.tenant)
            assert (server and _row(server)) == (expected.tenant.server and _row(server_b))
        assert key_by_prefix("tnt_000000000000") is None
    finally:
        Tenant.objects.filter(pk=there.pk).update(server=None)
