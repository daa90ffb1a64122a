"""Workers keep their database connections between tasks, as the web server does between
requests, and still drop a connection a task left unusable. Connections to silo databases are
not kept: one per silo would add up with the tenants (settings.SILO_CONN_MAX_AGE)."""

from types import SimpleNamespace

from django.db import connections

from config.celery_app import _age_out_connections
from rag.models import Document
from rag.services.querylog import retention_enforce_everywhere
from rag.services.recovery import documents_requeue_stuck_everywhere
from tenants import placement
from tenants.context import tenant_context

WORKER_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'tenantry-worker' "
    "AND datname = current_database()"
)


def _worker_backends() -> set[int]:
    with connections["owner"].cursor() as cursor:
        cursor.execute(WORKER_BACKENDS)
        return {pid for (pid,) in cursor.fetchall()}


def test_the_worker_reuses_its_connections_across_tasks(
    make_tenant, make_key, upload, wait_done, worker
):
    tenant = make_tenant("pool")
    key = make_key(tenant)
    first = upload(key, text="Kelp forests shelter sea otters along the coast.").json()["id"]
    assert wait_done(key, first)["status"] == "ready"
    after_first = _worker_backends()
    second = upload(key, text="Glaciers carve U-shaped valleys over millennia.").json()["id"]
    assert wait_done(key, second)["status"] == "ready"
    # Celery's own default closes every connection after each task: none would be left, and
    # the second task's would be new ones.
    assert after_first, "the worker kept no connection after its task"
    assert after_first & _worker_backends()


def test_a_sweep_over_every_tenant_holds_one_silo_connection_at_a_time(make_tenant):
    silos = [make_tenant("silo"), make_tenant("silo")]
    documents_requeue_stuck_everywhere()
    retention_enforce_everywhere()
    for tenant in silos:
        assert connections[placement.alias_for(tenant)].connection is None


def _task(eager: bool = False):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def _backend_pid(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_between_tasks_a_healthy_connection_stays_and_one_left_in_a_transaction_goes(pg):
    connection = connections["metering"]
    connection.close()  # one opened earlier in the session may be past CONN_MAX_AGE already
    pid = _backend_pid("metering")
    _age_out_connections(task=_task())
    assert _backend_pid("metering") == pid

    connection.set_autocommit(False)  # a task that left its transaction open
    _age_out_connections(task=_task(eager=True))  # an eager task runs inside its caller's use
    assert connection.connection is not None and not connection.get_autocommit()
    _age_out_connections(task=_task())
    assert connection.connection is None
    assert _backend_pid("metering") != pid


def test_after_a_task_no_connection_to_a_silo_database_is_kept(make_tenant):
    tenant = make_tenant("silo")
    connections["default"].close()  # one opened earlier may be past CONN_MAX_AGE already
    default_pid = _backend_pid("default")
    with tenant_context(tenant):
        assert Document.objects.count() == 0
    assert connections[placement.alias_for(tenant)].connection is not None
    _age_out_connections(task=_task())
    assert connections[placement.alias_for(tenant)].connection is None
    assert _backend_pid("default") == default_pid
