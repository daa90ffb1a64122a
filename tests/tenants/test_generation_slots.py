"""Concurrent generations: at most `max_concurrent_generations` per tenant across every process
(leases in the real Redis); a crashed holder's lease expires and frees its place."""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tenants.services.quotas import (
    QuotaExceeded,
    generation_slot,
    generations_running,
    quota_set,
)
from tests.helpers import service_env

ROOT = Path(__file__).resolve().parents[2]

HOLD_A_SLOT = """
import sys, time, django
django.setup()
from tenants.models import Tenant
from tenants.services.quotas import generation_slot
slot = generation_slot(tenant=Tenant.objects.get(pk=sys.argv[1]))
slot.__enter__()
print("held", flush=True)
time.sleep(600)
"""


def test_a_third_concurrent_generation_is_refused(make_tenant):
    tenant, other = make_tenant("pool"), make_tenant("pool")
    quota_set(tenant=tenant, max_concurrent_generations=2)
    with generation_slot(tenant=tenant), generation_slot(tenant=tenant):
        assert generations_running(tenant=tenant) == 2
        with pytest.raises(QuotaExceeded) as refused, generation_slot(tenant=tenant):
            pass
        assert (refused.value.status, refused.value.code) == (429, "rate_limited")
        assert refused.value.headers == {"Retry-After": "1"}
        assert "concurrent generation" in refused.value.detail
        with generation_slot(tenant=other):  # another tenant has slots of its own
            assert generations_running(tenant=other) == 1
    assert generations_running(tenant=tenant) == 0
    with generation_slot(tenant=tenant):  # both were released on exit
        pass


def test_a_slot_is_released_when_the_block_raises(make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, max_concurrent_generations=1)
    with pytest.raises(RuntimeError), generation_slot(tenant=tenant):
        raise RuntimeError("generation failed")
    assert generations_running(tenant=tenant) == 0
    with generation_slot(tenant=tenant):
        pass


def test_concurrent_takers_get_exactly_the_limit(make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, max_concurrent_generations=2)
    takers = 20
    start, finish = threading.Barrier(takers), threading.Barrier(takers)

    def take(_):
        start.wait()
        with ExitStack() as stack:
            try:
                stack.enter_context(generation_slot(tenant=tenant))
                held = True
            except QuotaExceeded:
                held = False
            finish.wait()  # every taker has tried before any slot is given back
            return held

    with ThreadPoolExecutor(max_workers=takers) as pool:
        held = list(pool.map(take, range(takers)))
    assert held.count(True) == 2
    assert generations_running(tenant=tenant) == 0


def test_a_crashed_holder_frees_its_place_when_its_lease_expires(make_tenant):
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, max_concurrent_generations=2)
    lease_seconds = 4
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_SLOT, str(tenant.id)],
        cwd=ROOT,
        env=service_env(GENERATION_LEASE_SECONDS=str(lease_seconds)),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout.readline().strip() == "held"
        taken_at = time.monotonic()
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # a crash: the slot is never given back
        child.wait()
    assert generations_running(tenant=tenant) == 1
    with generation_slot(tenant=tenant):
        # The other process's lease still counts, in this process too.
        with pytest.raises(QuotaExceeded), generation_slot(tenant=tenant):
            pass
        time.sleep(max(0.0, lease_seconds + 0.5 - (time.monotonic() - taken_at)))
        with generation_slot(tenant=tenant):
            assert generations_running(tenant=tenant) == 2


def test_a_generation_longer_than_its_lease_keeps_its_slot(make_tenant, settings):
    """The holder renews its short lease while it runs: after three lease lengths the slot is
    still held (the other place is the only one left), and given back at the end."""
    tenant = make_tenant("pool")
    quota_set(tenant=tenant, max_concurrent_generations=1)
    settings.GENERATION_LEASE_SECONDS = 1
    with generation_slot(tenant=tenant):
        time.sleep(3.2)
        assert generations_running(tenant=tenant) == 1
        with pytest.raises(QuotaExceeded), generation_slot(tenant=tenant):
            pass
    assert generations_running(tenant=tenant) == 0
