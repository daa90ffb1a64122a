"""Tenant moves between modes and servers: the rows arrive exactly (ids, embeddings and all),
the source is gone, the tenant is served from its new placement, check_isolation is clean,
and no other tenant sees anything new."""

import io
import json

import psycopg
import pytest
from django.core.management import CommandError, call_command

from config import embedded
from rag.models import Document
from tenants.context import tenant_context
from tenants.models import MoveState, TenantMove
from tenants.services.moves import MoveRefused, move_run, move_start
from tenants.services.moves.endpoints import source_of, target_of
from tenants.services.servers import server_remove
from tests.helpers import bearer
from tests.tenants.moves import move, rows, seed

MODES = ("pool", "bridge", "silo")
PAIRS = [(a, b) for a in MODES for b in MODES if a != b]


@pytest.fixture
def fast_moves(settings):
    settings.MOVE_DRAIN_SECONDS = 0


def audit() -> tuple[int, dict]:
    out = io.StringIO()
    try:
        call_command("check_isolation", "--json", stdout=out, stderr=io.StringIO())
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue())


def placement_gone(end) -> bool:
    """The source end holds nothing of the tenant any more: no schema, no database, and (in
    a pool) no row."""
    from tenants import placement

    if end.isolation_mode == "bridge":
        cfg = placement.shared_owner_settings(end)
        with _superuser_at(cfg, cfg["NAME"]) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", [end.schema_name]
            ).fetchone()
        return found is None
    if end.isolation_mode == "silo":
        cfg = placement.server_owner_settings(end)
        with _superuser_at(cfg, "postgres") as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [end.silo_database]
            ).fetchone()
        return found is None
    return all(not r for r in rows(end).values())


def _superuser_at(cfg: dict, dbname: str) -> psycopg.Connection:
    """The bootstrap superuser of the embedded server `cfg` points at (socket trust)."""
    options = cfg.get("OPTIONS", {})
    host = options.get("host") or cfg.get("HOST")
    port = options.get("port") or cfg.get("PORT")
    return psycopg.connect(host=host, port=port, user="postgres", dbname=dbname, autocommit=True)


def check_moved(record, tenant, before, other, others_before):
    assert record.state == MoveState.DONE, record.error
    assert tenant.isolation_mode == record.target_mode
    assert tenant.placement_version == record.source_version + 1
    assert rows(tenant) == before
    assert rows(other) == others_before
    assert placement_gone(source_of(record))
    assert record.fence_ms is not None and record.fence_ms < 5000


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_every_direction_on_one_server(make_tenant, fast_moves, source, target):
    tenant = make_tenant(source)
    other = make_tenant(source)
    seed(tenant)
    seed(other, tag="other")
    before, others_before = rows(tenant), rows(other)

    record, tenant = move(tenant, target)

    check_moved(record, tenant, before, other, others_before)
    code, report = audit()
    assert code == 0, report


@pytest.mark.parametrize(("source", "target"), [*PAIRS, *[(m, m) for m in MODES]])
def test_every_direction_to_another_server(make_tenant, fast_moves, server_b, source, target):
    tenant = make_tenant(source)
    other = make_tenant(source)
    seed(tenant)
    seed(other, tag="other")
    before, others_before = rows(tenant), rows(other)

    record, tenant = move(tenant, target, "srv-b")

    check_moved(record, tenant, before, other, others_before)
    assert tenant.server == server_b


def test_across_two_servers_and_back(make_tenant, make_key, api, fast_moves, server_b):
    """pool -> silo on b -> bridge on b -> pool on b -> pool on the platform database."""
    tenant = make_tenant("pool")
    other = make_tenant("pool")
    seed(tenant)
    seed(other, tag="other")
    key = make_key(tenant)
    before, others_before = rows(tenant), rows(other)
    for to, server in (("silo", "srv-b"), ("bridge", "srv-b"), ("pool", "srv-b"), ("pool", None)):
        record, tenant = move(tenant, to, server)
        check_moved(record, tenant, before, other, others_before)
        assert (tenant.server.name if tenant.server else None) == server
        # The API serves it from there at once.
        listed = api.get("/api/v1/documents", **bearer(key)).json()
        assert len(listed["results"]) == 3
    code, report = audit()
    assert code == 0, report


def test_a_silo_given_by_dsn_moves_to_a_registered_server(
    make_tenant, fast_moves, second_server, server_b
):
    dsn = second_server.url(embedded.OWNER_ROLE, database="postgres")
    tenant = make_tenant("silo", silo_dsn=dsn)
    other = make_tenant("pool")
    seed(tenant)
    before, others_before = rows(tenant), rows(other)

    record, tenant = move(tenant, "bridge", "srv-b")

    check_moved(record, tenant, before, other, others_before)
    assert tenant.silo_dsn == "" and tenant.server.name == "srv-b"


def test_cancelled_before_the_switch_rolls_back(make_tenant, fast_moves):
    tenant = make_tenant("pool")
    seed(tenant)
    before = rows(tenant)
    record = move_start(tenant=tenant, to="silo")
    TenantMove.objects.filter(pk=record.pk).update(cancel_requested=True)

    record = move_run(record)

    tenant.refresh_from_db()
    assert record.state == MoveState.CANCELLED
    assert tenant.isolation_mode == "pool" and tenant.placement_version == 1
    assert rows(tenant) == before
    assert placement_gone(target_of(record))


def test_keep_source_until_finish(make_tenant, fast_moves):
    tenant = make_tenant("bridge")
    seed(tenant)
    before = rows(tenant)
    record, tenant = move(tenant, "pool", keep_source=True)
    assert record.state == MoveState.KEPT
    assert rows(tenant) == before
    assert not placement_gone(source_of(record))  # kept

    from tenants.services.moves import move_finish

    record = move_finish(record)

    assert record.state == MoveState.DONE
    assert placement_gone(source_of(record))


def test_the_old_placement_refuses_writes_after_the_switch(make_tenant, fast_moves):
    """A process still holding the tenant as it was before the switch cannot write there: the
    write fails with `tenant_moving` (503 with Retry-After: 0 through the API: retry now, in
    the new placement), never lands."""
    from django.db import OperationalError

    from tenants.api.unavailable import classify

    tenant = make_tenant("pool")
    seed(tenant)
    stale = type(tenant).objects.get(pk=tenant.pk)
    _, tenant = move(tenant, "bridge", keep_source=True)

    with pytest.raises(OperationalError) as caught, tenant_context(stale):
        Document.objects.filter(title="doc 0").update(title="lost")
    outage = classify(caught.value)
    # Moved: the new placement takes the retry now.
    assert outage.code == "tenant_moving" and outage.headers == {"Retry-After": "0"}
    with tenant_context(tenant):
        assert Document.objects.filter(title="lost").count() == 0


def test_refusals(make_tenant):
    tenant = make_tenant("pool")
    with pytest.raises(MoveRefused):
        move_start(tenant=tenant, to="pool")
    move_start(tenant=tenant, to="bridge")
    with pytest.raises(MoveRefused):
        move_start(tenant=tenant, to="silo")


def test_servers_cannot_be_removed_while_they_hold_tenants(make_tenant, fast_moves, server_b):
    from tenants.services.servers import ServerError, server_list

    tenant = make_tenant("pool")
    seed(tenant)
    move(tenant, "silo", "srv-b")
    with pytest.raises(ServerError):
        server_remove(name="srv-b")
    loads = {load.name: load for load in server_list()}
    assert loads["srv-b"].tenants == {"silo": 1}
    assert loads["srv-b"].chunks == 12
    out = io.StringIO()
    call_command("server_list", stdout=out)
    assert "srv-b" in out.getvalue()


def test_new_tenants_follow_the_placement_rule(make_tenant, settings, server_b):
    settings.TENANT_PLACEMENT = "least-loaded"
    make_tenant("pool")  # the platform database has one more than srv-b now
    placed = make_tenant("bridge")
    assert placed.server == server_b
    settings.TENANT_PLACEMENT = "default"
    assert make_tenant("pool").server is None
    assert make_tenant("silo", server="srv-b").server == server_b


def test_every_server_is_migrated_and_audited(make_tenant, fast_moves, server_b):
    from tenants.services.servers import server_migrate

    make_tenant("pool", server="srv-b")
    make_tenant("bridge", server="srv-b")
    assert server_migrate(server=server_b) == []  # server_add migrated it
    out = io.StringIO()
    call_command("migrate_tenants", stdout=out)
    assert "server srv-b (pool): up to date" in out.getvalue()
    code, report = audit()
    assert code == 0, report
    labels = {p["placement"] for p in report["placements"]}
    assert "pool@srv-b" in labels
    assert any(label.startswith("bridge:") and label.endswith("@srv-b") for label in labels)


def test_deleting_a_tenant_mid_move_leaves_nothing(make_tenant, fast_moves):
    from tenants.services.provisioning import tenant_delete

    tenant = make_tenant("bridge")
    seed(tenant)
    record, tenant = move(tenant, "silo", keep_source=True)
    assert record.state == MoveState.KEPT

    tenant_delete(tenant=tenant)

    assert placement_gone(source_of(record)) and placement_gone(target_of(record))


def test_a_difference_found_by_the_verification_rolls_the_move_back(make_tenant, fast_moves):
    """A target row changed behind the move's back (here by hand, once the copy is done) is
    caught by the comparison before the fence: the move fails and rolls back, and the tenant
    stays where it was, untouched."""
    from tenants.services.moves import endpoints

    tenant = make_tenant("pool")
    seed(tenant)
    before = rows(tenant)
    record = move_start(tenant=tenant, to="bridge")

    def tamper(current):
        if current.phase == "catch_up" and not getattr(tamper, "done", False):
            tamper.done = True
            with endpoints.connect(target_of(current)) as conn:
                conn.execute("UPDATE rag_chunk SET text = 'tampered' WHERE ordinal = 0")

    record = move_run(record, progress=tamper)

    tenant.refresh_from_db()
    assert record.state == MoveState.FAILED and "rag_chunk" in record.error
    assert tenant.isolation_mode == "pool" and rows(tenant) == before
    assert placement_gone(target_of(record))
