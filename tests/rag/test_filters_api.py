"""Metadata filters on search and listing: equality, `in`, numeric and date ranges; anything
else is a 422 that names the problem."""

import pytest

from tests.helpers import bearer, wait_until

DOCS = [
    (
        "Alpine lakes freeze solid in deep winter.",
        {"lang": "en", "year": 2021, "region": "alps", "published": "2021-03-01"},
    ),
    (
        "Alpine lakes thaw slowly when spring arrives.",
        {"lang": "de", "year": 2019, "region": "alps", "published": "2019-11-20"},
    ),
    (
        "Alpine lakes attract swimmers in high summer.",
        {"lang": "fr", "year": 2024, "region": "jura", "published": "2024-07-14"},
    ),
]


@pytest.fixture(scope="module")
def corpus(django_db_setup, django_db_blocker, worker):
    """Three ready documents of one tenant (module-scoped: the worker ingests them once)."""

    from rest_framework.test import APIClient

    from tenants.services.apikeys import apikey_create
    from tenants.services.provisioning import tenant_create, tenant_delete

    with django_db_blocker.unblock():
        tenant = tenant_create(slug="filters", mode="pool")
        key = apikey_create(tenant=tenant, scopes=["ingest", "query"])[1]
        api = APIClient()
        ids = {}
        for text, meta in DOCS:
            body = api.post(
                "/api/v1/documents", {"text": text, "metadata": meta}, format="json", **bearer(key)
            ).json()
            ids[meta["lang"]] = body["id"]
        wait_until(
            lambda: (
                {
                    api.get(f"/api/v1/documents/{i}", **bearer(key)).json()["status"]
                    for i in ids.values()
                }
                == {"ready"}
            ),
            timeout=180,
            interval=0.3,
            message="the documents are not all ready",
        )
        yield key, ids
        tenant_delete(tenant=tenant)


def _langs(api, key, filt, **extra) -> list[str]:
    response = api.post(
        "/api/v1/search",
        {"query": "alpine lakes", "k": 10, "filter": filt, **extra},
        format="json",
        **bearer(key),
    )
    assert response.status_code == 200, response.content
    return sorted(r["metadata"]["lang"] for r in response.json()["results"])


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        (None, ["de", "en", "fr"]),
        ({"lang": "en"}, ["en"]),
        ({"region": "alps"}, ["de", "en"]),
        ({"lang": {"in": ["de", "fr"]}}, ["de", "fr"]),
        ({"year": {"gte": 2020}}, ["en", "fr"]),
        ({"year": {"gt": 2019, "lt": 2024}}, ["en"]),
        ({"published": {"lt": "2021-01-01"}}, ["de"]),
        ({"region": "alps", "year": {"lte": 2020}}, ["de"]),
        ({"lang": "xx"}, []),
    ],
)
def test_search_filters(pg, api, corpus, filt, expected):
    key, _ = corpus
    for mode in ("hybrid", "vector", "keyword"):
        assert _langs(api, key, filt, mode=mode) == expected, mode


def test_document_ids_restrict_search(pg, api, corpus):
    key, ids = corpus
    assert _langs(api, key, None, document_ids=[ids["fr"]]) == ["fr"]


@pytest.mark.parametrize(
    ("filt", "fragment"),
    [
        ({"year": {"regex": ".*"}}, "Unknown operator 'regex' on 'year'"),
        ({"bad key!": 1}, "Invalid metadata key"),
        ({"year": {"gte": "soon"}}, "'soon' is not a number or an ISO date"),
        ({"lang": {"in": []}}, "`in` on 'lang' needs a non-empty list"),
        ({"lang": ["en"]}, "must be a value or an operator object"),
    ],
)
def test_bad_filters_are_422_naming_the_problem(pg, api, corpus, filt, fragment):
    key, _ = corpus
    response = api.post(
        "/api/v1/search", {"query": "lakes", "filter": filt}, format="json", **bearer(key)
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_filter"
    assert fragment in response.json()["detail"]


def test_listing_filters_by_status_and_metadata(pg, api, corpus):
    key, _ids = corpus
    listed = api.get('/api/v1/documents?metadata={"year": {"gte": 2020}}', **bearer(key)).json()
    assert sorted(d["metadata"]["lang"] for d in listed["results"]) == ["en", "fr"]
    assert api.get("/api/v1/documents?status=failed", **bearer(key)).json()["count"] == 0
    assert api.get("/api/v1/documents?status=ready&limit=2", **bearer(key)).json()["count"] == 3
    bad = api.get('/api/v1/documents?metadata={"x": {"nope": 1}}', **bearer(key))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_filter"
