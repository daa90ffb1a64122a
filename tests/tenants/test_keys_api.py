"""The keys endpoints manage only the caller's tenant's keys, in every isolation mode."""

import pytest

from tests.helpers import MODES, bearer


@pytest.mark.parametrize("mode", MODES)
def test_admin_key_issues_lists_and_revokes_its_own_keys(make_tenant, make_key, api, mode):
    tenant = make_tenant(mode)
    admin = make_key(tenant, scopes=["admin"])
    created = api.post(
        "/api/v1/keys", {"scopes": ["query"], "name": "ci"}, format="json", **bearer(admin)
    )
    assert created.status_code == 201
    new = created.json()
    assert new["key"].startswith(new["prefix"]) and new["scopes"] == ["query"]
    assert api.get("/api/v1/tenant", **bearer(new["key"])).status_code == 200
    listed = api.get("/api/v1/keys", **bearer(admin)).json()
    assert {k["prefix"] for k in listed} == {admin[:16], new["prefix"]}
    assert all("key" not in k for k in listed)
    assert api.delete(f"/api/v1/keys/{new['id']}", **bearer(admin)).status_code == 204
    assert api.get("/api/v1/tenant", **bearer(new["key"])).status_code == 401


@pytest.mark.parametrize("mode", MODES)
def test_another_tenants_key_is_invisible_and_cannot_be_revoked(make_tenant, make_key, api, mode):
    a, b = make_tenant(mode), make_tenant(mode)
    a_key = make_key(a, scopes=["admin"])
    b_admin = make_key(b, scopes=["admin"])
    a_id = api.get("/api/v1/keys", **bearer(a_key)).json()[0]["id"]
    response = api.delete(f"/api/v1/keys/{a_id}", **bearer(b_admin))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert [k["prefix"] for k in api.get("/api/v1/keys", **bearer(b_admin)).json()] == [
        b_admin[:16]
    ]
    assert api.get("/api/v1/tenant", **bearer(a_key)).status_code == 200


def test_invalid_scopes_are_a_400_problem(make_tenant, make_key, api):
    admin = make_key(make_tenant("pool"), scopes=["admin"])
    response = api.post("/api/v1/keys", {"scopes": ["root"]}, format="json", **bearer(admin))
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_request"
    assert "scopes" in response.json()["errors"]
