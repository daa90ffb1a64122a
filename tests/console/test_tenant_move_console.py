"""Moving a tenant from the console: the Placement card and its form, a move the real worker
runs to the end while the progress partial follows it, cancel and finish, and refusals shown
as form errors (never a 500)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from rag.models import Chunk, Document
from tenants.context import tenant_context
from tenants.models import MoveState, Tenant, TenantMove
from tenants.services.moves import move_start
from tests.helpers import wait_until
from tests.tenants.moves import move, seed

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def fast_moves(settings):
    """No drain for moves run in this process (the worker keeps its default 5 s)."""
    settings.MOVE_DRAIN_SECONDS = 0


def _start(client, tenant, to: str, server: str = "default", **extra):
    data = {"move-to": to, "move-server": server, **extra}
    return client.post(reverse("console:tenant-move", args=[tenant.slug]), data, **HX)


def _progress(client, tenant, record, query: str = ""):
    url = reverse("console:tenant-move-progress", args=[tenant.slug, record.pk]) + query
    return client.get(url, **HX)


def _follow(client, tenant, record, query: str = "") -> tuple[str, set[tuple[str, str]]]:
    """Poll the progress partial as htmx does until the move stops running; returns the last
    answer and every (state, phase) it showed on the way."""
    seen = set()

    def over():
        response = _progress(client, tenant, record, query)
        assert response.status_code == 200
        html = response.content.decode()
        state = re.search(r'data-state="(\w+)" data-phase="(\w+)"', html)
        seen.add(state.groups())
        return response if "HX-Retarget" in response else None

    last = wait_until(over, timeout=90, interval=0.3, message="the move did not end")
    return last.content.decode(), seen


def test_the_tenant_page_shows_the_placement_and_loads_the_move_form(staff_client, make_tenant):
    tenant = make_tenant("pool")
    page = staff_client.get(reverse("console:tenant", args=[tenant.slug])).content.decode()
    card = page[page.index('id="placement-panel"') :]
    placement_url = reverse("console:tenant-placement", args=[tenant.slug])
    assert f'hx-get="{placement_url}" hx-trigger="load"' in page
    assert "<dt>Mode</dt><dd>pool</dd>" in card and "<dt>Server</dt><dd>default</dd>" in card
    assert "<dt>Placement version</dt><dd>1</dd>" in card

    panel = staff_client.get(placement_url, **HX)
    html = panel.content.decode()
    assert panel.status_code == 200 and "<html" not in html
    assert 'id="placement-panel"' in html
    assert '<select name="move-to"' in html and '<select name="move-server"' in html
    assert '<option value="default" selected>default (' in html
    assert 'name="move-keep_source"' in html
    assert reverse("console:tenant-move", args=[tenant.slug]) in html

    full = staff_client.get(placement_url).content.decode()  # without JavaScript: a page
    assert "<html" in full and '<select name="move-to"' in full


def test_move_pages_and_actions_are_for_staff_only(user_client, make_tenant):
    tenant = make_tenant("pool")
    record = move_start(tenant=tenant, to="bridge")
    slug, pk = tenant.slug, record.pk
    gets = [
        reverse("console:tenant-placement", args=[slug]),
        reverse("console:tenant-move-progress", args=[slug, pk]),
    ]
    posts = [
        reverse("console:tenant-move", args=[slug]),
        reverse("console:tenant-move-cancel", args=[slug, pk]),
        reverse("console:tenant-move-finish", args=[slug, pk]),
        reverse("console:tenant-move-resume", args=[slug, pk]),
    ]
    for client in (Client(), user_client):
        for url in gets:
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith("/console/login/?next="), url
        for url in posts:
            response = client.post(url, {"move-to": "silo", "move-server": "default"})
            assert response.status_code == 302, url
            assert response["Location"].startswith("/console/login/"), url
    record.refresh_from_db()
    assert (record.state, record.cancel_requested) == (MoveState.RUNNING, False)
    assert TenantMove.objects.filter(tenant=tenant).count() == 1


def test_the_form_starts_a_move_the_worker_runs_to_done(staff_client, make_tenant, worker):
    tenant = make_tenant("pool")
    seed(tenant, documents=2, chunks=1)

    response = _start(staff_client, tenant, "bridge")

    assert response.status_code == 200
    html = response.content.decode()
    record = TenantMove.objects.get(tenant=tenant)
    progress_url = reverse("console:tenant-move-progress", args=[tenant.slug, record.pk])
    assert f'hx-get="{progress_url}" hx-trigger="every 1s"' in html
    assert '<select name="move-to"' not in html  # no second move while this one runs

    last, seen = _follow(staff_client, tenant, record)

    record.refresh_from_db()
    assert record.state == MoveState.DONE, record.error
    # The worker's 5 s drain keeps the move in its clean-up for a few polls at least.
    assert ("running", "cleanup") in seen, seen
    assert 'data-state="done" data-phase="done"' in last
    assert f'<code>{Document._meta.db_table}</code></th><td class="num">2</td>' in last
    assert f"{record.fence_ms} ms" in last
    assert 'data-placement="mode">bridge<' in last and 'data-placement="version">2<' in last
    assert '<select name="move-to"' in last  # the panel is back, with its form
    tenant = Tenant.objects.get(pk=tenant.pk)
    with tenant_context(tenant):
        assert (Document.objects.count(), Chunk.objects.count()) == (2, 2)


def test_a_move_to_where_the_tenant_is_is_refused_on_the_form(staff_client, make_tenant):
    tenant = make_tenant("pool")

    response = _start(staff_client, tenant, "pool")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="form-errors" role="alert"' in html
    assert f"Tenant &#x27;{tenant.slug}&#x27; is already pool on default." in html
    assert not TenantMove.objects.filter(tenant=tenant).exists()
    data = {"move-to": "pool", "move-server": "default"}
    page = staff_client.post(reverse("console:tenant-move", args=[tenant.slug]), data)
    assert page.status_code == 400 and "is already pool on default" in page.content.decode()
    unknown = _start(staff_client, tenant, "bridge", server="nowhere")
    assert unknown.status_code == 200 and 'id="id_move-server_error"' in unknown.content.decode()
    assert not TenantMove.objects.filter(tenant=tenant).exists()


def test_cancel_before_the_switch_rolls_back_and_after_it_is_refused(
    staff_client, make_tenant, fast_moves
):
    tenant = make_tenant("pool")
    seed(tenant, documents=1, chunks=1)
    waiting = move_start(tenant=tenant, to="bridge")  # recorded, no worker given it

    placement_url = reverse("console:tenant-placement", args=[tenant.slug])
    page = staff_client.get(placement_url, **HX)
    cancel_url = reverse("console:tenant-move-cancel", args=[tenant.slug, waiting.pk])
    assert cancel_url in page.content.decode()
    cancelled = staff_client.post(cancel_url, **HX).content.decode()

    waiting.refresh_from_db()
    assert waiting.state == MoveState.CANCELLED
    assert 'data-state="cancelled"' in cancelled and '<select name="move-to"' in cancelled
    tenant.refresh_from_db()
    assert (tenant.isolation_mode, tenant.placement_version) == ("pool", 1)

    finished, tenant = move(tenant, "bridge")
    assert finished.state == MoveState.DONE, finished.error
    done_cancel = reverse("console:tenant-move-cancel", args=[tenant.slug, finished.pk])
    assert done_cancel not in staff_client.get(placement_url, **HX).content.decode()

    refused = staff_client.post(done_cancel, **HX)

    assert refused.status_code == 200
    assert "The move has switched already: only its clean-up is left." in refused.content.decode()
    assert staff_client.post(done_cancel).status_code == 409
    finished.refresh_from_db()
    tenant.refresh_from_db()
    assert finished.state == MoveState.DONE and tenant.isolation_mode == "bridge"


def test_finish_drops_a_kept_source_through_the_worker(
    staff_client, make_tenant, fast_moves, worker
):
    tenant = make_tenant("pool")
    seed(tenant, documents=1, chunks=1)
    kept, tenant = move(tenant, "bridge", keep_source=True)
    assert kept.state == MoveState.KEPT, kept.error
    finish_url = reverse("console:tenant-move-finish", args=[tenant.slug, kept.pk])
    page = staff_client.get(reverse("console:tenant-placement", args=[tenant.slug]), **HX)
    assert finish_url in page.content.decode() and "hx-trigger" not in page.content.decode()

    asked = staff_client.post(finish_url, **HX).content.decode()

    assert "?finishing=1" in asked and finish_url not in asked
    last, _ = _follow(staff_client, tenant, kept, "?finishing=1")
    kept.refresh_from_db()
    assert kept.state == MoveState.DONE, kept.error
    assert 'data-state="done"' in last
    again = staff_client.post(finish_url, **HX).content.decode()
    assert "The move has no kept source to drop." in again
