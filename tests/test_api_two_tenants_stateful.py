"""Two tenants side by side, driven by a Hypothesis state machine over the real gunicorn and
a real worker: uploads, lists, reads, searches, answers and deletes in any order, each tenant
asking for its own text and the other's. The invariant, checked on every response: nothing a
tenant receives holds the other tenant's words, and the other tenant's document ids are
unknown to it (404, as for an id that never existed).

Each tenant's documents carry a secret marker word of its own (random per run) that no request
ever holds, and a topic word the other tenant asks about (to pull the documents its way if it
could); a leak on any path, a search hit, a citation, a listed title, an error message, shows
as the other tenant's marker in a body. (The marker is never sent: the model may echo a
question, which is not a leak.)
"""

from __future__ import annotations

import uuid

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from tests.helpers import wait_until

WORDS = [
    "river",
    "lantern",
    "copper",
    "orchard",
    "glacier",
    "meadow",
    "harbor",
    "quartz",
    "falcon",
    "cedar",
]
ANSWERS_PER_RUN = 3  # the real model: a few answers prove the path, many only cost time


class Tenant:
    def __init__(self, base_url: str, key: str):
        self.marker = "zx" + uuid.uuid4().hex[:10]
        self.topic = "topic" + uuid.uuid4().hex[:6]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.base_url = base_url
        self.documents: set[str] = set()
        self.deleted: set[str] = set()

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=60, **kwargs)

    def text(self, words: list[str]) -> str:
        return f"{self.topic} notes by {self.marker}: " + " ".join(words) + "."


def _machine(tenants: list[Tenant]):
    """The machine class over `tenants`, whose state (documents, answers asked) outlives
    each of Hypothesis' runs, as the server's does."""
    budget = {"answers": ANSWERS_PER_RUN}

    class TwoTenants(RuleBasedStateMachine):
        documents = Bundle("documents")  # (owner index, document id)

        def __init__(self):
            super().__init__()
            self.tenants = tenants
            self.last: list[tuple[int, requests.Response]] = []

        def _record(self, who: int, response: requests.Response) -> requests.Response:
            assert response.status_code < 500, (response.status_code, response.text[:500])
            self.last.append((who, response))
            return response

        @initialize(target=documents)
        def seed(self):
            """One ready document per tenant before anything else, so searches can hit it."""
            seeded = []
            for who, tenant in enumerate(self.tenants):
                body = {"text": tenant.text(WORDS), "title": f"{tenant.topic} {tenant.marker}"}
                doc = self._record(who, tenant.call("POST", "/api/v1/documents", json=body))
                assert doc.status_code in (200, 202), doc.text
                tenant.documents.add(doc.json()["id"])
                seeded.append((who, doc.json()["id"]))
            for who, doc_id in seeded:
                tenant = self.tenants[who]
                wait_until(
                    lambda t=tenant, d=doc_id: (
                        t.call("GET", f"/api/v1/documents/{d}").json()["status"] == "ready"
                    ),
                    timeout=120,
                    message="the seed document was not ingested",
                )
            return multiple(*seeded)

        @rule(target=documents, who=st.integers(0, 1), words=st.lists(st.sampled_from(WORDS)))
        def upload(self, who, words):
            tenant = self.tenants[who]
            body = {"text": tenant.text([*words, uuid.uuid4().hex[:6]])}
            response = self._record(who, tenant.call("POST", "/api/v1/documents", json=body))
            assert response.status_code in (200, 202), response.text
            tenant.documents.add(response.json()["id"])
            return (who, response.json()["id"])

        @rule(
            who=st.integers(0, 1),
            own=st.booleans(),
            mode=st.sampled_from(["vector", "keyword", "hybrid"]),
            word=st.sampled_from(WORDS),
        )
        def search(self, who, own, mode, word):
            target = self.tenants[who if own else 1 - who]
            query = f"{target.topic} notes {word}"
            body = {"query": query, "k": 20, "mode": mode}
            response = self._record(
                who, self.tenants[who].call("POST", "/api/v1/search", json=body)
            )
            assert response.status_code == 200, response.text
            hits = {hit["document_id"] for hit in response.json()["results"]}
            # Deleted ones too: a deletion racing its ingestion is not this test's subject.
            assert hits <= self.tenants[who].documents | self.tenants[who].deleted

        @rule(who=st.integers(0, 1))
        def list_documents(self, who):
            response = self._record(who, self.tenants[who].call("GET", "/api/v1/documents"))
            assert response.status_code == 200
            listed = {d["id"] for d in response.json()["results"]}
            assert listed <= self.tenants[who].documents

        @rule(who=st.integers(0, 1), document=documents)
        def read(self, who, document):
            owner, doc_id = document
            response = self._record(
                who, self.tenants[who].call("GET", f"/api/v1/documents/{doc_id}")
            )
            if owner != who or doc_id not in self.tenants[owner].documents:
                assert response.status_code == 404, response.text
            else:
                assert response.status_code == 200, response.text

        @rule(who=st.integers(0, 1), document=documents)
        def delete(self, who, document):
            owner, doc_id = document
            tenant = self.tenants[who]
            response = self._record(who, tenant.call("DELETE", f"/api/v1/documents/{doc_id}"))
            if owner == who and doc_id in tenant.documents:
                assert response.status_code in (202, 204), response.text
                tenant.documents.discard(doc_id)
                tenant.deleted.add(doc_id)
            else:
                assert response.status_code == 404, response.text

        @rule(who=st.integers(0, 1), own=st.booleans())
        def answer(self, who, own):
            if budget["answers"] == 0:
                return
            budget["answers"] -= 1
            target = self.tenants[who if own else 1 - who]
            body = {
                "question": f"What do the {target.topic} notes say?",
                "max_tokens": 16,
                "cache": False,
            }
            response = self._record(
                who, self.tenants[who].call("POST", "/api/v1/answer", json=body)
            )
            assert response.status_code == 200, response.text

        @invariant()
        def nothing_of_the_other_tenant(self):
            for who, response in self.last:
                other = self.tenants[1 - who].marker
                assert other not in response.text, (
                    f"tenant {who} received the other tenant's text: {response.text[:500]}"
                )
            self.last.clear()

    return TwoTenants


@pytest.mark.parametrize("modes", [("pool", "pool"), ("bridge", "silo")], ids="-".join)
def test_two_tenants_never_see_each_other(modes, web_server, worker, make_tenant, make_key):
    machine = _machine([Tenant(web_server.url, make_key(make_tenant(mode))) for mode in modes])
    machine.TestCase.settings = settings(
        max_examples=4,
        stateful_step_count=12,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    machine.TestCase().runTest()
