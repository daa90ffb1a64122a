"""`manage.py tenant_quota SLUG [--set name=value ...]`: prints and sets a tenant's quotas."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import TenantQuota


def run(*args) -> str:
    out = io.StringIO()
    call_command("tenant_quota", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def quotas_printed(output: str) -> dict[str, int]:
    pairs = (line.split() for line in output.splitlines() if len(line.split()) == 2)
    return {name: int(value) for name, value in pairs if value.isdigit()}


def test_prints_the_quotas_and_sets_several(make_tenant, settings):
    tenant = make_tenant("pool")
    assert quotas_printed(run(tenant.slug)) == settings.QUOTA_DEFAULTS

    output = run(
        tenant.slug,
        "--set",
        "search_per_hour=20",
        "max_storage_bytes=2147483648",
        "--set",
        "max_concurrent_generations=4",
    )
    assert f"Quotas of {tenant.slug} updated." in output
    assert quotas_printed(output) == {
        **settings.QUOTA_DEFAULTS,
        "search_per_hour": 20,
        "max_storage_bytes": 2147483648,
        "max_concurrent_generations": 4,
    }
    stored = TenantQuota.objects.get(tenant=tenant)
    assert (stored.search_per_hour, stored.max_concurrent_generations) == (20, 4)
    assert quotas_printed(run(tenant.slug))["search_per_hour"] == 20


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("searches_per_hour=20", "Unknown quota 'searches_per_hour'"),
        ("search_per_hour=0", "search_per_hour must be a positive integer"),
        ("search_per_hour=lots", "search_per_hour must be a positive integer"),
        ("search_per_hour", "Expected NAME=VALUE"),
    ],
)
def test_bad_names_and_values_are_errors_and_change_nothing(make_tenant, assignment, message):
    tenant = make_tenant("pool")
    before = run(tenant.slug)
    with pytest.raises(CommandError, match=message):
        run(tenant.slug, "--set", "max_documents=5", assignment)
    assert run(tenant.slug) == before


def test_unknown_tenant_is_an_error(pg):
    with pytest.raises(CommandError, match="No tenant with slug 'nobody'"):
        run("nobody")
