"""Answer evaluation runs: every question of a set that carries expected facts or is marked
unanswerable is answered through the answer path (answer_prepare, as the API answers it, cache
off), per model and per answer policy, scored (answer_metrics.py) and stored on an EvalRun of
kind "answers" with the settings used, next to the set's retrieval runs.

Each policy answers afresh: `strict` checks sentences while it streams, so its time to first
token is its own, not annotate's; `extractive` and declined answers run no model.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from tenants.context import tenant_context
from tenants.models import Tenant

from ...models import EvalQuestion, EvalRun, EvalRunKind, EvalRunStatus, EvalSet
from ..grounding import POLICIES
from .answer_metrics import ANSWER_METRICS, answer_aggregate, answer_score
from .metrics import MAX_K, Progress, section_delta
from .runs import _claim, _reload, _save_progress, evaluation_previous, evaluation_settings

logger = logging.getLogger(__name__)

DEFAULT_K = 5
ANSWER_TEXT_KEPT = 500  # characters of each answer stored with the run, for reading it back


def answer_questions(questions: list[EvalQuestion]) -> list[EvalQuestion]:
    """The questions an answer run asks: those with expected facts or marked unanswerable."""
    return [q for q in questions if q.expected_facts or q.unanswerable]


def answer_steps(questions: list, models: int = 1, policies: int = len(POLICIES)) -> int:
    return len(questions) * models * policies


def answer_models(models: list[str] | None = None) -> list[str]:
    """The models to evaluate, checked against the registry (UnknownModel otherwise); none
    given: the platform default."""
    from ...generation.registry import default_model_name, model_spec

    return [model_spec(name).name for name in models] if models else [default_model_name()]


def answer_settings(*, k: int, models: list[str], policies: list[str], max_tokens: int) -> dict:
    """What an answer run's figures depend on: retrieval's settings, the models (name and
    file), the policies, generation limits and the support check's thresholds."""
    from ...generation.registry import model_spec

    described = []
    for name in models:
        spec = model_spec(name)
        try:
            file = spec.path(assemble=False).name
        except Exception:  # not assembled yet: the source says which file it will be
            file = spec.source
        described.append({"name": name, "file": file})
    thresholds = {
        key.lower(): getattr(settings, key)
        for key in (
            "GROUNDING_LEXICAL_WEIGHT",
            "GROUNDING_SUPPORT_THRESHOLD",
            "ANSWER_MIN_SIMILARITY",
            "ANSWER_MIN_COVERAGE",
        )
        if hasattr(settings, key)
    }
    return {
        **evaluation_settings(k=k),
        "models": described,
        "policies": list(policies),
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "answer_context_tokens": settings.ANSWER_CONTEXT_TOKENS,
        "llm_context_size": settings.LLM_CONTEXT_SIZE,
        **thresholds,
    }


def answer_evaluation_run(
    *,
    tenant: Tenant,
    eval_set: EvalSet,
    models: list[str] | None = None,
    policies: list[str] | tuple[str, ...] = POLICIES,
    k: int = DEFAULT_K,
    max_tokens: int | None = None,
    run: EvalRun | None = None,
    progress: Progress | None = None,
) -> EvalRun:
    """Answer every answer question of the set with each model under each policy and store the
    run (done or failed), as evaluation_run does for retrieval.

    With `run` (queued by evalrun_queue, kind "answers") that run is computed with its k, the
    default model and every policy; a finished run is returned untouched. A failure (a model
    that cannot load, a token budget spent) is stored on the run with its reason.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown or not policies:
        raise ValueError(f"policies are {', '.join(POLICIES)}; not {', '.join(unknown)}")
    policies = [p for p in POLICIES if p in policies]
    names = answer_models(models)
    max_tokens = max_tokens or settings.ANSWER_DEFAULT_MAX_TOKENS
    if run is None:
        with tenant_context(tenant):
            run = EvalRun.objects.create(
                eval_set_id=eval_set.pk,
                k=k,
                kind=EvalRunKind.ANSWERS,
                status=EvalRunStatus.RUNNING,
            )
    elif run.eval_set_id != eval_set.pk or run.kind != EvalRunKind.ANSWERS:
        raise ValueError(f"run {run.pk} is not an answer run of set {eval_set.pk}")
    elif not _claim(tenant, run):
        return _reload(tenant, run)
    run.eval_set = eval_set
    try:
        _compute(tenant, eval_set, run, names, policies, max_tokens, progress)
    except Exception as exc:  # stored on the run; the command and console report it
        logger.exception("answer evaluation run %s of tenant %s failed", run.pk, tenant.slug)
        run.status, run.error = EvalRunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        run.finished_at = timezone.now()
        with tenant_context(tenant):
            EvalRun.objects.filter(pk=run.pk).update(
                status=run.status, error=run.error, finished_at=run.finished_at
            )
    return run


def _compute(tenant, eval_set, run, names, policies, max_tokens, progress) -> None:
    from ..answer import NO_SOURCES_ANSWER
    from ..grounding import DECLINE_ANSWER

    decline_texts = (DECLINE_ANSWER, NO_SOURCES_ANSWER)
    with tenant_context(tenant):
        questions = answer_questions(list(EvalQuestion.objects.filter(eval_set_id=eval_set.pk)))
    run.settings = {
        **answer_settings(k=run.k, models=names, policies=policies, max_tokens=max_tokens),
        "questions": len(questions),
        "answerable": sum(not q.unanswerable for q in questions),
        "unanswerable": sum(q.unanswerable for q in questions),
    }
    total = answer_steps(questions, len(names), len(policies))
    run.progress_done, run.progress_total = 0, total
    _save_progress(tenant, run, settings_too=True)
    scores: dict[str, dict[str, list[dict]]] = {n: {p: [] for p in policies} for n in names}
    details = []
    for name in names:
        for question in questions:
            for policy, result in _answers(tenant, question, name, policies, run.k, max_tokens):
                score = answer_score(
                    result=result,
                    expected_facts=question.expected_facts,
                    unanswerable=question.unanswerable,
                    archetype=question.archetype,
                    decline_texts=decline_texts,
                )
                scores[name][policy].append(score)
                details.append(
                    {
                        "ordinal": question.ordinal,
                        "model": name,
                        "policy": policy,
                        "answer": (result.get("answer") or "")[:ANSWER_TEXT_KEPT],
                        **{k: v for k, v in score.items() if k not in ("decode_s",)},
                    }
                )
                run.progress_done += 1
                _save_progress(tenant, run)
                if progress is not None:
                    progress(run.progress_done, total)
    run.results = {
        "answers": {
            name: {policy: answer_aggregate(scores[name][policy]) for policy in policies}
            for name in names
        },
        "details": details,
    }
    run.status, run.finished_at = EvalRunStatus.DONE, timezone.now()
    with tenant_context(tenant):
        EvalRun.objects.filter(pk=run.pk).update(
            status=run.status, results=run.results, finished_at=run.finished_at
        )


def _answers(tenant, question, model, policies, k, max_tokens):
    """(policy, result) for each policy, each answered afresh (no cache) as the API would."""
    from ..answer import answer_prepare

    for policy in policies:
        session = answer_prepare(
            tenant=tenant,
            question=question.question,
            k=k,
            model=model,
            policy=policy,
            max_tokens=max_tokens,
            use_cache=False,
            source="eval",
        )
        yield policy, session.start().run().result()


# --- comparison -------------------------------------------------------------------------------


def answer_evaluation_compare(*, run: EvalRun, tenant: Tenant | None = None) -> dict | None:
    """Each metric of a done answer run minus the same metric of the set's previous done answer
    run, per model and policy: {"previous": {"id", "k", "created_at"}, "answers": {model:
    {policy: {"overall": {metric: delta}, "archetypes": {name: {metric: delta}}}}}}; a delta
    is None where either run has no value. None without a previous run."""
    if run.status != EvalRunStatus.DONE:
        return None
    tenant = tenant or Tenant.objects.get(pk=run.tenant_id)
    with tenant_context(tenant):
        previous = evaluation_previous(run=run)
    if previous is None:
        return None
    answers = {}
    for model, by_policy in run.results.get("answers", {}).items():
        answers[model] = {}
        for policy, now in by_policy.items():
            before = previous.results.get("answers", {}).get(model, {}).get(policy, {})
            answers[model][policy] = section_delta(now, before, ANSWER_METRICS)
    return {
        "previous": {"id": previous.pk, "k": previous.k, "created_at": previous.created_at},
        "answers": answers,
    }
