"""Evaluation runs: compute the metrics for every mode, store them with the settings used,
and compare a run with the previous one."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tenants.context import data_alias, tenant_context
from tenants.models import Tenant

from ...handoff import EVALUATE_SET, after_commit
from ...models import (
    Chunk,
    Document,
    EvalQuestion,
    EvalRun,
    EvalRunKind,
    EvalRunStatus,
    EvalSet,
)
from .metrics import (
    MAX_K,
    METRICS,
    MISSING,
    MODES,
    NDCG_DEPTH,
    Progress,
    ndcg_at_k,
    ranked_documents,
    recall_at_k,
    reciprocal_rank,
    section_delta,
)

logger = logging.getLogger(__name__)

# --- runs -------------------------------------------------------------------------------------


def evaluation_settings(*, k: int) -> dict:
    """What a run's numbers depend on besides the corpus: the embedding model, chunking, index
    and search parameters. Stored with the run, so a change in the metrics can be traced to a
    change here."""
    from ...embedding import MODEL_ID
    from ...tokenizer import embedding_model_path

    path = embedding_model_path()
    hnsw = next(index for index in Chunk._meta.indexes if hasattr(index, "ef_construction"))
    return {
        "embedding_model": MODEL_ID,
        "embedding_model_path": path.name,
        "chunk_max_tokens": settings.CHUNK_MAX_TOKENS,
        "chunk_overlap_tokens": settings.CHUNK_OVERLAP_TOKENS,
        "hnsw_m": hnsw.m,
        "hnsw_ef_construction": hnsw.ef_construction,
        "hnsw_ef_search": settings.HNSW_EF_SEARCH,
        "keyword_candidates": settings.KEYWORD_CANDIDATES,
        "search_exact_below_chunks": settings.SEARCH_EXACT_BELOW_CHUNKS,
        "k": k,
    }


def chunk_depth(k: int) -> int:
    """Chunks to ask search for so that enough distinct documents remain for the metrics'
    depth (max(k, 10)) after a document's later chunks are dropped."""
    return min(max(k, NDCG_DEPTH) * 4, 200)


def evalrun_queue(
    *, tenant: Tenant, eval_set: EvalSet, k: int = 10, kind: str = EvalRunKind.RETRIEVAL
) -> EvalRun:
    """A queued run of the set, evaluated by a worker (`evaluate_set`) once this commits. An
    answer run (kind "answers") uses the default model and every policy."""
    _check_k(k)
    with tenant_context(tenant):
        questions = list(EvalQuestion.objects.filter(eval_set_id=eval_set.pk))
        if kind == EvalRunKind.ANSWERS:
            from .answers import answer_questions, answer_steps

            total = answer_steps(answer_questions(questions))
        else:
            total = len(retrieval_questions(questions)) * len(MODES)
        run = EvalRun.objects.create(eval_set_id=eval_set.pk, k=k, kind=kind, progress_total=total)
        after_commit(EVALUATE_SET, str(tenant.id), run.pk, using=data_alias())
    run.eval_set = eval_set
    return run


def evaluation_run(
    *,
    tenant: Tenant,
    eval_set: EvalSet,
    k: int = 10,
    run: EvalRun | None = None,
    progress: Progress | None = None,
) -> EvalRun:
    """Evaluate every question of the set in each mode and store the run (done or failed).

    With `run` (a queued one, from `evalrun_queue`) that run is computed, with its own k; a
    run already done or failed is returned untouched, and a running one (a worker died) starts
    over. Progress (searches done of total) is written in short transactions as it goes, so
    the console can show it, and reported to `progress(done, total)` (the command's bar).
    A failure is stored on the run with its reason and the run is returned, status "failed".
    """
    if run is None:
        _check_k(k)
        with tenant_context(tenant):
            run = EvalRun.objects.create(eval_set_id=eval_set.pk, k=k, status=EvalRunStatus.RUNNING)
    elif run.eval_set_id != eval_set.pk:
        raise ValueError(f"run {run.pk} is not a run of set {eval_set.pk}")
    elif run.kind == EvalRunKind.ANSWERS:  # queued from the console
        from .answers import answer_evaluation_run

        return answer_evaluation_run(tenant=tenant, eval_set=eval_set, run=run, progress=progress)
    elif not _claim(tenant, run):
        return _reload(tenant, run)
    run.eval_set = eval_set
    try:
        _compute(tenant, eval_set, run, progress)
    except Exception as exc:  # stored on the run; the command and console report it
        logger.exception("evaluation run %s of tenant %s failed", run.pk, tenant.slug)
        run.status, run.error = EvalRunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        run.finished_at = timezone.now()
        with tenant_context(tenant):
            EvalRun.objects.filter(pk=run.pk).update(
                status=run.status, error=run.error, finished_at=run.finished_at
            )
    return run


def retrieval_questions(questions: list[EvalQuestion]) -> list[EvalQuestion]:
    """The questions with relevant documents: those asked only of answers (expected facts, or
    unanswerable) have nothing for search to find, and would count as misses."""
    return [q for q in questions if q.relevant_document_ids or q.relevant_external_ids]


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")


def _claim(tenant: Tenant, run: EvalRun) -> bool:
    """Start (or restart) a queued or running run; False for a finished one. A conditional
    UPDATE, so a redelivered task never recomputes a run that is done."""
    with tenant_context(tenant):
        claimed = EvalRun.objects.filter(
            pk=run.pk, status__in=[EvalRunStatus.QUEUED, EvalRunStatus.RUNNING]
        ).update(status=EvalRunStatus.RUNNING, progress_done=0, error="", finished_at=None)
    return bool(claimed)


def _reload(tenant: Tenant, run: EvalRun) -> EvalRun:
    with tenant_context(tenant):
        return EvalRun.objects.select_related("eval_set").get(pk=run.pk)


def _compute(tenant: Tenant, eval_set: EvalSet, run: EvalRun, progress: Progress | None):
    from ..search import chunk_search

    k = run.k
    with tenant_context(tenant):
        questions = retrieval_questions(list(EvalQuestion.objects.filter(eval_set_id=eval_set.pk)))
        by_external = _external_ids(questions)
        corpus = {
            "documents_ready": Document.objects.filter(status="ready").count(),
            "questions": len(questions),
        }
    run.settings = {**evaluation_settings(k=k), **corpus}
    total = len(questions) * len(MODES)
    run.progress_done, run.progress_total = 0, total
    _save_progress(tenant, run, settings_too=True)
    scores: dict[str, list[tuple[str, dict]]] = {mode: [] for mode in MODES}
    depth = chunk_depth(k)
    for question in questions:
        relevant = _relevant(question, by_external)
        for mode in MODES:
            hits = chunk_search(
                tenant=tenant, query=question.question, k=depth, mode=mode, observe=False
            ).hits
            ranked = ranked_documents(hit.document_id for hit in hits)
            scores[mode].append(
                (
                    question.archetype,
                    {
                        "recall@k": recall_at_k(ranked, relevant, k),
                        "mrr": reciprocal_rank(ranked[:k], relevant),
                        "ndcg@10": ndcg_at_k(ranked, relevant, NDCG_DEPTH),
                    },
                )
            )
            run.progress_done += 1
            _save_progress(tenant, run)
            if progress is not None:
                progress(run.progress_done, total)
    run.results = {"modes": {mode: _aggregate(scores[mode]) for mode in MODES}}
    run.status, run.finished_at = EvalRunStatus.DONE, timezone.now()
    with tenant_context(tenant):
        EvalRun.objects.filter(pk=run.pk).update(
            status=run.status, results=run.results, finished_at=run.finished_at
        )


def _save_progress(tenant: Tenant, run: EvalRun, settings_too: bool = False) -> None:
    fields = {"progress_done": run.progress_done, "progress_total": run.progress_total}
    if settings_too:
        fields["settings"] = run.settings
    with tenant_context(tenant):
        EvalRun.objects.filter(pk=run.pk).update(**fields)


def _external_ids(questions: list[EvalQuestion]) -> dict[str, str]:
    """external id -> document id, for the external ids the questions name (bound tenant)."""
    wanted = {e for q in questions for e in q.relevant_external_ids}
    if not wanted:
        return {}
    rows = Document.objects.filter(external_id__in=wanted).values_list("external_id", "pk")
    return {external_id: str(pk) for external_id, pk in rows}


def _relevant(question: EvalQuestion, by_external: dict[str, str]) -> set[str]:
    relevant = {str(d) for d in question.relevant_document_ids}
    for external_id in question.relevant_external_ids:
        relevant.add(by_external.get(external_id, MISSING + external_id))
    return relevant


def _aggregate(scored: list[tuple[str, dict]]) -> dict:
    """Means overall and per archetype (questions without one count only overall)."""
    groups: dict[str, list[dict]] = {}
    for archetype, values in scored:
        if archetype:
            groups.setdefault(archetype, []).append(values)
    return {
        "overall": _means([values for _, values in scored]),
        "archetypes": {name: _means(groups[name]) for name in sorted(groups)},
    }


def _means(rows: list[dict]) -> dict:
    n = len(rows)
    means = {metric: (sum(r[metric] for r in rows) / n if n else 0.0) for metric in METRICS}
    return {**means, "questions": n}


# --- comparison -------------------------------------------------------------------------------


def evaluation_previous(*, run: EvalRun) -> EvalRun | None:
    """The set's last finished run of the same kind created before `run`, in the caller's
    tenant context.

    By creation time, then id: ids are random (rag.models says why), and runs created in one
    transaction share a `created_at`, so among those the id decides, arbitrarily but always
    the same way.
    """
    earlier = Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, pk__lt=run.pk)
    return (
        EvalRun.objects.filter(
            earlier, eval_set_id=run.eval_set_id, kind=run.kind, status=EvalRunStatus.DONE
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def evaluation_compare(*, run: EvalRun, tenant: Tenant | None = None) -> dict | None:
    """Each metric of a done run minus the same metric of the set's previous done run.

    {"previous": {"id", "k", "created_at"}, "modes": {mode: {"overall": {metric: delta},
    "archetypes": {name: {metric: delta}}}}}; a delta is None where the previous run has no
    such group. None when the run is not done or has no previous run. Binds the run's tenant
    itself (`tenant` saves looking it up).
    """
    if run.status != EvalRunStatus.DONE:
        return None
    tenant = tenant or Tenant.objects.get(pk=run.tenant_id)
    with tenant_context(tenant):
        previous = evaluation_previous(run=run)
    if previous is None:
        return None
    modes = {}
    for mode, now in run.results.get("modes", {}).items():
        before = previous.results.get("modes", {}).get(mode, {})
        modes[mode] = section_delta(now, before, METRICS)
    return {
        "previous": {"id": previous.pk, "k": previous.k, "created_at": previous.created_at},
        "modes": modes,
    }
