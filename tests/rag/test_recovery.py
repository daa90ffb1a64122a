"""Stalled documents are queued again, and failed with a reason after too many attempts."""

from datetime import timedelta

from django.utils import timezone

from rag.models import Document
from rag.services.recovery import documents_requeue_stuck
from tenants.context import tenant_context


def _stalled(tenant, attempts: int, status: str = "processing") -> Document:
    with tenant_context(tenant):
        doc = Document.objects.create(
            title=f"a{attempts}",
            content_hash=f"{attempts}{status}".ljust(64, "0"),
            status=status,
            attempts=attempts,
        )
        Document.objects.filter(pk=doc.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    return doc


def test_stalled_documents_are_requeued_then_given_up(make_tenant, settings):
    settings.INGEST_MAX_ATTEMPTS = 3
    tenant, other = make_tenant("pool"), make_tenant("pool")
    retry, give_up, lost = _stalled(tenant, 1), _stalled(tenant, 3), _stalled(tenant, 0, "queued")
    with tenant_context(tenant):
        fresh = Document.objects.create(
            title="fresh", content_hash="f" * 64, status="processing", attempts=1
        )
    others = _stalled(other, 1)

    requeued, failed = documents_requeue_stuck(tenant=tenant)
    assert sorted(requeued) == sorted([str(retry.pk), str(lost.pk)])
    assert failed == [str(give_up.pk)]
    with tenant_context(tenant):
        states = dict(Document.objects.values_list("title", "status"))
        assert "gave_up" in Document.objects.get(pk=give_up.pk).error
    assert states[fresh.title] == "processing"  # still being worked on: left alone
    assert states[give_up.title] == "failed"
    with tenant_context(other):
        assert Document.objects.get(pk=others.pk).status == "processing"  # other tenant untouched

    assert documents_requeue_stuck(tenant=tenant)[1] == []  # a second sweep changes nothing more
