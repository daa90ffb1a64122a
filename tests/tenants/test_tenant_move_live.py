"""A tenant moves pool -> silo on another server while a client writes and another reads,
all through the real web server and worker:

- every write the API acknowledged is there after the move, and nothing it deleted came back;
- no read failed;
- a fixed set of searches (exact: a small tenant is searched exactly) returns the same before
  and after;
- documents whose ingestion was queued before the switch end `ready` in the new placement.

Writes held by the fence wait, or get 503 `tenant_moving` with Retry-After, and are retried
as a client would.
"""

import threading
import time

import httpx

from rag.models import Document
from tenants.context import tenant_context
from tenants.models import MoveState
from tenants.services.moves import move_run, move_start
from tests.helpers import wait_until
from tests.tenants.moves import seed

QUERIES = ["installing the platform", "row level security", "quota of requests", "document"]
TEXTS = [
    "Installing the platform takes two commands: make run starts everything.",
    "Row level security keeps every tenant's rows apart in the shared pool tables.",
    "A quota of requests per hour protects the shared web processes from a noisy tenant.",
]


class Client:
    def __init__(self, url: str, key: str):
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.longest_wait = 0.0
        self.refusals = 0

    def write(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Retry a write the fence refused, as the Retry-After header says."""
        started = time.monotonic()
        while True:
            response = self.http.request(method, path, **kwargs)
            if response.status_code != 503:
                self.longest_wait = max(self.longest_wait, time.monotonic() - started)
                return response
            assert response.json()["code"] == "tenant_moving", response.text
            self.refusals += 1
            time.sleep(float(response.headers["Retry-After"]))

    def search(self, query: str, ids: list[str]) -> list:
        response = self.http.post(
            "/api/v1/search", json={"query": query, "k": 5, "mode": "vector", "document_ids": ids}
        )
        response.raise_for_status()
        return [(h["chunk_id"], round(h["score"], 6)) for h in response.json()["results"]]


def test_writer_and_reader_through_a_move(make_tenant, make_key, web_server, worker, server_b):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    client = Client(web_server.url, key)
    reading = Client(web_server.url, key)
    fixed = []
    for n, text in enumerate(TEXTS):
        created = client.write("POST", "/api/v1/documents", json={"text": text, "title": f"f{n}"})
        assert created.status_code in (201, 202), created.text
        fixed.append(created.json()["id"])
    wait_until(lambda: all(_status(tenant, i) == "ready" for i in fixed), timeout=180)
    seed(tenant, documents=20, chunks=25, tag="bulk")  # something to copy meanwhile
    before = {q: client.search(q, fixed) for q in QUERIES}

    acknowledged: dict[str, str] = {}  # external id -> text the API accepted last
    deleted: set[str] = set()
    done: list[int] = []  # acknowledged operations
    failed_reads: list = []
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            n += 1
            external = f"w{n % 7}"
            if n % 5 == 0 and acknowledged:
                victim = sorted(acknowledged)[0]
                doc_id = acknowledged.pop(victim)[1]
                response = client.write("DELETE", f"/api/v1/documents/{doc_id}")
                assert response.status_code in (204, 404), response.text
                deleted.add(doc_id)
                done.append(n)
                continue
            text = f"note {n} for {external}: the writer keeps writing while the tenant moves"
            response = client.write(
                "POST", "/api/v1/documents", json={"text": text, "external_id": external}
            )
            assert response.status_code in (200, 201, 202), response.text
            acknowledged[external] = (text, response.json()["id"])
            done.append(n)
            deleted.discard(response.json()["id"])

    def reader():
        while not stop.is_set():
            for query in QUERIES:
                try:
                    reading.search(query, fixed)
                except Exception as exc:  # any failed read is a finding
                    failed_reads.append(repr(exc))

    writer_errors: list = []

    def writing():
        try:
            writer()
        except Exception as exc:  # an assertion in a thread would only be a warning
            writer_errors.append(repr(exc))

    threads = [threading.Thread(target=writing), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:
        # Writes and reads flowing before the move starts, and in the new placement after it.
        wait_until(lambda: len(done) >= 3, timeout=60, message="no write went through")
        move = move_run(move_start(tenant=tenant, to="silo", server="srv-b"))
        after = len(done)
        wait_until(
            lambda: len(done) > after + 2,
            timeout=60,
            message="no write after the move",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    assert move.state == MoveState.DONE, move.error
    log = web_server.log()
    assert writer_errors == [], (writer_errors, log[log.find("Traceback") - 200 :][:6000])
    tenant.refresh_from_db()
    assert tenant.isolation_mode == "silo" and tenant.server == server_b
    assert failed_reads == []
    assert {q: client.search(q, fixed) for q in QUERIES} == before

    wait_until(lambda: _in_progress(tenant) == 0, timeout=300, message="ingestion never ended")
    with tenant_context(tenant):
        writes = {
            d.external_id: d
            for d in Document.objects.exclude(external_id="").select_related("source")
        }
        statuses = set(Document.objects.values_list("status", flat=True))
        assert not Document.objects.filter(pk__in=deleted).exists()  # nothing resurrected
    assert set(writes) == set(acknowledged)  # nothing lost
    for external, (text, doc_id) in acknowledged.items():
        assert str(writes[external].pk) == doc_id
        assert bytes(writes[external].source.data).decode() == text
    assert statuses == {"ready"}
    assert move.fence_ms < 2000


def _status(tenant, document_id) -> str:
    tenant.refresh_from_db()
    with tenant_context(tenant):
        return Document.objects.get(pk=document_id).status


def _in_progress(tenant) -> int:
    tenant.refresh_from_db()
    with tenant_context(tenant):
        return Document.objects.filter(status__in=["queued", "processing"]).count()
