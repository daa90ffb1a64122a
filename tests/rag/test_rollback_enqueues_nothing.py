"""An upload whose transaction rolls back sends no task: follow-up work leaves only when the
transaction that stored the document commits (rag.handoff). The probe is Celery's own
`before_task_publish` signal, fired for every message this process publishes."""

import pytest
from django.db import transaction

from rag.handoff import INGEST_DOCUMENT
from rag.models import Document
from rag.services.documents import document_submit
from tenants.context import data_alias, tenant_context
from tests.helpers import MODES


class Abandoned(Exception):
    pass


@pytest.mark.parametrize("mode", MODES)
def test_a_rolled_back_upload_enqueues_nothing(mode, make_tenant, published):
    tenant = make_tenant(mode)
    with tenant_context(tenant):
        alias = data_alias()
    with pytest.raises(Abandoned), transaction.atomic(using=alias):
        submitted = document_submit(
            tenant=tenant, data=b"Kept only if it commits.", filename="a.txt"
        )
        raise Abandoned
    with tenant_context(tenant):
        assert not Document.objects.filter(pk=submitted.document.pk).exists()
    assert published == []

    # The probe does see a publish: the same upload, committed, sends exactly one task.
    kept = document_submit(tenant=tenant, data=b"Kept only if it commits.", filename="a.txt")
    assert published == [(INGEST_DOCUMENT, [str(tenant.id), str(kept.document.id)])]
