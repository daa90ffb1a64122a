"""The same ORM models, bound to different tenants, never see or write each other's rows."""

import pytest
from django.db import DatabaseError

from rag.models import Document
from tenants.context import TenantNotBound, dangerously_unbound, tenant_context
from tests.helpers import MODES


def _doc(title: str) -> Document:
    return Document.objects.create(title=title, content_hash=title.ljust(64, "0"))


@pytest.mark.parametrize("mode", MODES)
def test_rows_of_one_tenant_are_invisible_to_another_in_the_same_mode(make_tenant, mode):
    a, b = make_tenant(mode), make_tenant(mode)
    with tenant_context(a):
        doc = _doc("a-secret")
        assert doc.tenant_id == a.id  # filled from the context by the column default
    with tenant_context(b):
        _doc("b-own")
        assert list(Document.objects.values_list("title", flat=True)) == ["b-own"]
        assert not Document.objects.filter(pk=doc.pk).exists()
        assert Document.objects.filter(pk=doc.pk).update(title="hijacked") == 0
        assert Document.objects.filter(pk=doc.pk).delete()[0] == 0
    with tenant_context(a):
        assert Document.objects.get(pk=doc.pk).title == "a-secret"
        assert Document.objects.count() == 1


@pytest.mark.parametrize("mode", MODES)
def test_a_write_naming_another_tenant_is_refused_by_postgres(make_tenant, mode):
    a, b = make_tenant(mode), make_tenant(mode)
    with pytest.raises(DatabaseError, match="row-level security"), tenant_context(b):
        Document.objects.create(tenant_id=a.id, title="forged", content_hash="f" * 64)
    with tenant_context(a):
        assert Document.objects.count() == 0


@pytest.mark.parametrize("mode", MODES)
def test_queries_outside_a_tenant_context_raise_and_underneath_see_nothing(make_tenant, mode):
    tenant = make_tenant(mode)
    with tenant_context(tenant):
        _doc("hidden")
    with pytest.raises(TenantNotBound, match=r"rag\.Document"):
        Document.objects.count()
    with dangerously_unbound():
        assert Document.objects.count() == 0
        with pytest.raises(DatabaseError, match="row-level security"):
            _doc("orphan")  # no tenant bound: the default tenant_id is NULL; the policy refuses


@pytest.mark.parametrize("outer_mode", MODES)
def test_nested_contexts_restore_the_outer_tenant(make_tenant, outer_mode):
    outer, inner = make_tenant(outer_mode), make_tenant("pool")
    with tenant_context(outer):
        _doc("outer")
        with tenant_context(inner):
            assert Document.objects.count() == 0
            _doc("inner")
        assert list(Document.objects.values_list("title", flat=True)) == ["outer"]


def test_modes_do_not_see_each_other(make_tenant):
    tenants = [make_tenant(mode) for mode in MODES]
    for tenant in tenants:
        with tenant_context(tenant):
            _doc(f"doc-{tenant.slug}")
    for tenant in tenants:
        with tenant_context(tenant):
            assert list(Document.objects.values_list("title", flat=True)) == [f"doc-{tenant.slug}"]
