"""The OpenAPI schema, the interactive docs (served locally) and the console login page."""

import re

import pytest
from django.test import Client


@pytest.fixture
def client():
    return Client()


def test_openapi_schema_lists_the_tenant_endpoints(pg, client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/tenant", "/api/v1/keys", "/api/v1/keys/{key_id}"} <= set(schema["paths"])


def test_docs_page_uses_local_assets_only(pg, client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    assert all(not u.startswith(("http://", "https://", "//")) for u in urls), urls
    assert any("swagger" in u for u in urls)


def test_console_login_page_and_staff_only_home(pg, client):
    from django.contrib.auth import get_user_model

    login = client.get("/console/login/")
    assert login.status_code == 200
    assert b'<label for="id_username">' in login.content and b"csrfmiddlewaretoken" in login.content
    assert client.get("/").url == "/console/"
    assert client.get("/console/")["Location"].startswith("/console/login/")

    get_user_model().objects.create_superuser("root", "", "pw-for-tests")
    response = client.post("/console/login/", {"username": "root", "password": "pw-for-tests"})
    assert response.status_code == 302
    assert client.get("/console/").status_code == 200


def test_unknown_api_path_is_a_problem_404(pg, client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
