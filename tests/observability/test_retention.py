"""Retention: old query log rows and stale cache entries go, recent ones stay, and one tenant's
pruning never touches another tenant's rows, in every isolation mode."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers import MODES

DAY = timedelta(days=1)


def _seed(tenant) -> None:
    """Per kind of row, one past its retention ("old") and one within it ("new")."""
    from rag.models import AnswerCacheEntry, CorpusVersion, EmbeddingCacheEntry, QueryLog
    from rag.services.querylog import querylog_record
    from tenants.context import tenant_context

    for question in ("old question", "new question"):
        assert querylog_record(
            tenant=tenant, kind="search", question=question, mode="hybrid", k=5, timings={}
        )
    now = timezone.now()
    with tenant_context(tenant):
        QueryLog.objects.filter(question="old question").update(created_at=now - 31 * DAY)
        QueryLog.objects.filter(question="new question").update(created_at=now - 29 * DAY)
        CorpusVersion.objects.create(version=7)
        for key, version, age in (
            ("old-version", 6, timedelta(0)),  # a corpus that changed since: never matches
            ("expired", 7, 2 * DAY),  # past ANSWER_CACHE_TTL_SECONDS (1 day)
            ("current", 7, timedelta(hours=1)),
        ):
            entry = AnswerCacheEntry.objects.create(key=key, corpus_version=version, response={})
            AnswerCacheEntry.objects.filter(pk=entry.pk).update(created_at=now - age)
        for sha, age in (("unused", 31 * DAY), ("used", 29 * DAY)):
            entry = EmbeddingCacheEntry.objects.create(
                model="m", text_sha256=sha, embedding=[0.1] * 384
            )
            EmbeddingCacheEntry.objects.filter(pk=entry.pk).update(last_used_at=now - age)


def _rows(tenant) -> dict[str, set]:
    from rag.models import AnswerCacheEntry, EmbeddingCacheEntry, QueryLog
    from tenants.context import tenant_context

    with tenant_context(tenant):
        return {
            "query_log": set(QueryLog.objects.values_list("question", flat=True)),
            "answer_cache": set(AnswerCacheEntry.objects.values_list("key", flat=True)),
            "embedding_cache": set(
                EmbeddingCacheEntry.objects.values_list("text_sha256", flat=True)
            ),
        }


SEEDED = {
    "query_log": {"old question", "new question"},
    "answer_cache": {"old-version", "expired", "current"},
    "embedding_cache": {"unused", "used"},
}
KEPT = {"query_log": {"new question"}, "answer_cache": {"current"}, "embedding_cache": {"used"}}


@pytest.fixture(autouse=True)
def retention_settings(settings):
    settings.QUERY_LOG_RETENTION_DAYS = 30
    settings.ANSWER_CACHE_TTL_SECONDS = 86400
    settings.EMBEDDING_CACHE_RETENTION_DAYS = 30


@pytest.mark.parametrize("mode", MODES)
def test_pruning_one_tenant_keeps_recent_rows_and_every_other_tenant(mode, make_tenant):
    from rag.services.querylog import querylog_prune, retention_enforce

    tenant, neighbour = make_tenant(mode), make_tenant(mode)
    _seed(tenant)
    _seed(neighbour)

    assert querylog_prune(tenant=tenant, older_than=timedelta(days=30)) == 1
    assert _rows(tenant)["query_log"] == {"new question"}
    assert retention_enforce(tenant=tenant) == {
        "query_log": 0,
        "answer_cache": 2,
        "embedding_cache": 1,
    }
    assert _rows(tenant) == KEPT
    assert _rows(neighbour) == SEEDED  # untouched: its rows are out of the pruner's reach


def test_querylog_prune_takes_a_moment_too(make_tenant):
    from rag.services.querylog import querylog_prune

    tenant = make_tenant("pool")
    _seed(tenant)
    assert querylog_prune(tenant=tenant, older_than=timezone.now() - 40 * DAY) == 0
    assert querylog_prune(tenant=tenant, older_than=timezone.now()) == 2
    assert _rows(tenant)["query_log"] == set()


def test_the_periodic_task_prunes_every_tenant_in_its_own_store(make_tenant, settings):
    from rag.tasks import prune_query_logs

    assert settings.CELERY_BEAT_SCHEDULE["prune-query-logs"] == {
        "task": "rag.tasks.prune_query_logs",
        "schedule": float(settings.RETENTION_SWEEP_INTERVAL_SECONDS),
    }
    tenants = [make_tenant(mode) for mode in MODES]
    for tenant in tenants:
        _seed(tenant)
    report = prune_query_logs.apply().get()
    for tenant in tenants:
        assert report[tenant.slug] == {"query_log": 1, "answer_cache": 2, "embedding_cache": 1}
        assert _rows(tenant) == KEPT


def test_retention_follows_the_settings(make_tenant, settings):
    from rag.services.querylog import retention_enforce

    settings.QUERY_LOG_RETENTION_DAYS = 20
    settings.EMBEDDING_CACHE_RETENTION_DAYS = 40
    tenant = make_tenant("bridge")
    _seed(tenant)
    pruned = retention_enforce(tenant=tenant)
    assert (pruned["query_log"], pruned["embedding_cache"]) == (2, 0)
    assert _rows(tenant)["embedding_cache"] == {"unused", "used"}
