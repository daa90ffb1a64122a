"""Writes deferred until the response has gone (tenants.after_response): run after the
request's `request_finished`, in order, at once outside a request, and never failing the
request they follow."""

from __future__ import annotations

import logging

from tenants import after_response as deferred
from tenants.after_response import after_response, deferred_running

# The module's own receivers of request_started / request_finished, called as the signals
# would (sending the signals themselves also runs Django's close_old_connections).
request_started, request_finished = deferred._request_started, deferred._request_finished


def test_outside_a_request_the_call_runs_at_once():
    done = []
    after_response(done.append, "now")
    assert done == ["now"]


def test_inside_a_request_calls_wait_for_the_response_then_run_in_order():
    done = []
    request_started()
    after_response(done.append, "first")
    after_response(lambda: done.append(("second", deferred_running())))
    assert done == []
    request_finished()
    assert done == ["first", ("second", True)]
    assert not deferred_running()
    # The next request starts with nothing pending.
    request_started()
    request_finished()
    assert done == ["first", ("second", True)]


def test_a_failing_call_is_logged_and_the_rest_still_run(caplog):
    done = []

    def broken():
        raise RuntimeError("the ledger is gone")

    request_started()
    after_response(broken)
    after_response(done.append, "after")
    with caplog.at_level(logging.ERROR, logger="tenants.after_response"):
        request_finished()
    assert done == ["after"]
    assert "the ledger is gone" in caplog.text
    # And outside a request a failure is the caller's, as a direct call's would be.
    try:
        after_response(broken)
    except RuntimeError as exc:
        assert "ledger" in str(exc)
    else:
        raise AssertionError("a failing call outside a request must raise")


def test_a_search_over_the_api_is_still_metered_and_logged(make_tenant, make_key, api):
    """The search's ledger row and log entry, now written after its response, are written
    (the test client sends request_finished as a server does, before it returns)."""
    from rag.models import QueryLog
    from tenants.context import tenant_context
    from tenants.models import UsageRecord
    from tests.helpers import bearer
    from tests.rag.chunks import fill_chunks

    tenant = make_tenant("pool")
    fill_chunks(tenant, 5, seed=3)
    key = make_key(tenant, scopes=["query"])
    response = api.post("/api/v1/search", {"query": "passage"}, format="json", **bearer(key))
    assert response.status_code == 200
    assert UsageRecord.objects.get(tenant_id=tenant.pk, kind="search").requests == 1
    with tenant_context(tenant):
        assert QueryLog.objects.filter(kind="search").count() == 1
