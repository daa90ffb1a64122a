"""A tenant's API keys in the console: created and shown once, listed by prefix, revoked."""

from __future__ import annotations

import re

from django.urls import reverse

from tenants.models import ApiKey
from tenants.services.apikeys import apikey_create
from tests.helpers import bearer

from .conftest import shown_key


def _keys_url(tenant) -> str:
    return reverse("console:tenant-keys", args=[tenant.slug])


def test_the_keys_page_has_a_labelled_form_and_an_empty_state(staff_client, make_tenant):
    tenant = make_tenant("pool")
    response = staff_client.get(_keys_url(tenant))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'aria-current="page">API keys' in html
    assert '<label for="id_name">' in html and '<label for="id_expires_in_days">' in html
    for i, scope in enumerate(["ingest", "query", "admin"]):
        assert f'value="{scope}"' in html and f'<label for="id_scopes_{i}">' in html
    assert "No API keys yet." in html
    assert "js/copy.js" in html


def test_a_new_key_is_shown_once_and_authenticates(staff_client, make_tenant, api):
    tenant = make_tenant("bridge")
    response = staff_client.post(
        _keys_url(tenant), {"name": "website", "scopes": ["query", "ingest"], "expires_in_days": 30}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    raw = shown_key(html)
    assert raw and raw.startswith("tnt_")
    assert "shown only this once" in html
    assert 'data-copy-target="new-key"' in html and 'role="status"' in html

    key = ApiKey.objects.get(tenant=tenant)
    assert (key.name, key.scopes, key.expires_at is not None) == (
        "website",
        ["ingest", "query"],
        True,
    )
    me = api.get("/api/v1/tenant", **bearer(raw))
    assert me.status_code == 200
    assert me.json()["slug"] == tenant.slug and me.json()["scopes"] == ["ingest", "query"]

    # Not kept anywhere: the session does not have it and a reload shows the prefix only.
    assert raw not in repr(dict(staff_client.session.items()))
    again = staff_client.get(_keys_url(tenant)).content.decode()
    assert raw not in again and shown_key(again) is None
    assert f"{key.prefix}…" in again and "query" in again and "website" in again


def test_creating_a_key_with_htmx_returns_the_panel(staff_client, make_tenant, api):
    tenant = make_tenant("pool")
    response = staff_client.post(_keys_url(tenant), {"scopes": ["admin"]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<div id="keys-panel">')
    raw = shown_key(html)
    assert api.get("/api/v1/keys", **bearer(raw)).status_code == 200  # admin scope


def test_a_key_needs_a_scope(staff_client, make_tenant):
    tenant = make_tenant("pool")
    response = staff_client.post(_keys_url(tenant), {"name": "none", "expires_in_days": 0})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose at least one scope." in html and 'id="id_scopes_error"' in html
    assert 'id="id_expires_in_days_error"' in html
    assert shown_key(html) is None
    assert not ApiKey.objects.filter(tenant=tenant).exists()


def test_revoking_a_key_makes_the_api_refuse_it(staff_client, make_tenant, make_key, api):
    tenant = make_tenant("silo")
    raw = make_key(tenant, scopes=["query"])
    key = ApiKey.objects.get(tenant=tenant)
    assert api.get("/api/v1/tenant", **bearer(raw)).status_code == 200

    url = reverse("console:tenant-key-revoke", args=[tenant.slug, key.id])
    response = staff_client.post(url)
    assert response.status_code == 302 and response["Location"] == _keys_url(tenant)
    refused = api.get("/api/v1/tenant", **bearer(raw))
    assert refused.status_code == 401 and refused.json()["code"] == "api_key_revoked"

    page = staff_client.get(response["Location"]).content.decode()
    assert f"Revoked the key {key.prefix}" in page
    assert ">revoked<" in page and url not in page  # no revoke button for a revoked key


def test_revoking_with_htmx_returns_the_key_list(staff_client, make_tenant, make_key):
    tenant = make_tenant("pool")
    make_key(tenant)
    key = ApiKey.objects.get(tenant=tenant)
    url = reverse("console:tenant-key-revoke", args=[tenant.slug, key.id])
    response = staff_client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="key-list"' in html and ">revoked<" in html
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_tenants_key_pages_show_and_touch_only_its_own_keys(staff_client, make_tenant):
    mine, other = make_tenant("pool"), make_tenant("pool")
    my_key, _ = apikey_create(tenant=mine, scopes=["query"])
    their_key, _ = apikey_create(tenant=other, scopes=["query"])

    html = staff_client.get(_keys_url(mine)).content.decode()
    assert my_key.prefix in html and their_key.prefix not in html

    crafted = reverse("console:tenant-key-revoke", args=[mine.slug, their_key.id])
    assert staff_client.post(crafted).status_code == 404
    their_key.refresh_from_db()
    assert their_key.revoked_at is None
    assert re.search(r"/keys/[0-9a-f-]{36}/revoke/", html)
