"""Evaluation: the tenant's sets (import from JSONL, run), and its runs with their metrics per
mode and the change since the set's previous run; answer runs (started here or by `evaluate
--answers`) with theirs per model and answer policy. A run is computed by a Celery worker
(`evaluate_set`); while it is queued or running its row polls itself and shows progress."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from rag.models import EvalRunKind
from rag.selectors import evalrun_get, evalrun_list, evalset_get, evalset_list
from rag.services.evaluation import (
    ANSWER_METRIC_LABELS,
    ANSWER_METRICS,
    MAX_K,
    MAX_NAME,
    METRICS,
    MODES,
    EvalImportError,
    answer_evaluation_compare,
    evalrun_queue,
    evalset_import,
    evaluation_compare,
    format_delta,
)
from tenants.models import Tenant

from ..decorators import staff_tenant
from ..htmx import wants_fragment

MAX_FILE_BYTES = 5 * 1024 * 1024
RUNS_SHOWN = 20
METRIC_LABELS = {"recall@k": "Recall@k", "mrr": "MRR", "ndcg@10": "nDCG@10"}


class EvalImportForm(forms.Form):
    file = forms.FileField(
        label="JSONL file",
        help_text=(
            'One question per line: {"question": "...", "relevant": ["document id or external '
            'id", ...], "archetype": "analyst"}; for answers also "expected_facts": ["..."] or '
            f'"unanswerable": true. Up to {filesizeformat(MAX_FILE_BYTES)}.'
        ),
    )
    name = forms.CharField(
        label="Set name",
        max_length=MAX_NAME,
        required=False,
        help_text="Defaults to the file's name; an existing set of that name is replaced.",
    )
    description = forms.CharField(label="Description", max_length=1000, required=False)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_FILE_BYTES:
            raise forms.ValidationError(
                f"The file is too large ({filesizeformat(upload.size)}; "
                f"the limit is {filesizeformat(MAX_FILE_BYTES)})."
            )
        return upload


class EvalRunForm(forms.Form):
    k = forms.IntegerField(label="k", min_value=1, max_value=MAX_K, initial=10)
    kind = forms.ChoiceField(choices=EvalRunKind.choices, required=False)


@staff_tenant
@require_safe
@vary_on_headers("HX-Request")
def evaluation(request, tenant):
    """The page, or (htmx) just its panel: sets, import form and runs."""
    return _render(request, tenant, EvalImportForm())


@staff_tenant
@require_POST
def evaluation_import(request, tenant):
    """Import (or replace) a set through `evalset_import`, as the `evaluate` command does; a
    bad line is reported with its number and nothing is stored."""
    form = EvalImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        name = form.cleaned_data["name"] or Path(upload.name).stem
        try:
            eval_set = evalset_import(
                tenant=tenant,
                name=name,
                lines=upload.read().splitlines(),
                description=form.cleaned_data["description"],
            )
        except EvalImportError as exc:
            form.add_error("file", f"{str(exc)[0].upper()}{str(exc)[1:]}. Nothing was imported.")
        else:
            count = evalset_get(tenant=tenant, set_id=eval_set.pk).question_count
            messages.success(request, f"Imported set “{eval_set.name}” with {count} questions.")
            if request.htmx:
                return _render(request, tenant, EvalImportForm())
            return redirect("console:tenant-evaluation", slug=tenant.slug)
    return _render(request, tenant, form, status=200 if request.htmx else 400)


@staff_tenant
@require_POST
def evaluation_run(request, tenant, set_id):
    """Queue a run of the set; a worker computes it (the row shows its progress)."""
    eval_set = evalset_get(tenant=tenant, set_id=set_id)
    if eval_set is None:
        raise Http404("No such evaluation set.")
    form = EvalRunForm(request.POST)
    if form.is_valid():
        kind = form.cleaned_data["kind"] or EvalRunKind.RETRIEVAL
        run = evalrun_queue(tenant=tenant, eval_set=eval_set, k=form.cleaned_data["k"], kind=kind)
        what = "Answer run" if kind == EvalRunKind.ANSWERS else "Run"
        messages.success(request, f"{what} {run.pk} of “{eval_set.name}” queued.")
    else:
        messages.error(
            request, " ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        )
    if request.htmx:
        return _render(request, tenant, EvalImportForm())
    return redirect("console:tenant-evaluation", slug=tenant.slug)


@staff_tenant
@require_safe
def evaluation_run_row(request, tenant, run_id):
    """One run's row; it polls itself while the run is queued or running."""
    run = evalrun_get(tenant=tenant, run_id=run_id)
    if run is None:
        raise Http404("No such evaluation run.")
    if run.kind == EvalRunKind.ANSWERS:
        context = {"tenant": tenant, "run": _present_answers(tenant, run)}
        return render(request, "console/rag/_evaluation_answer_run_row.html", context)
    context = {"tenant": tenant, "run": _present(tenant, run), "modes": MODES}
    return render(request, "console/rag/_evaluation_run_row.html", context)


def _render(request, tenant: Tenant, form: EvalImportForm, status: int = 200):
    listed = evalrun_list(tenant=tenant, limit=RUNS_SHOWN)
    runs = [_present(tenant, run) for run in listed if run.kind != EvalRunKind.ANSWERS]
    answer_runs = [
        _present_answers(tenant, run) for run in listed if run.kind == EvalRunKind.ANSWERS
    ]
    context = {
        "tenant": tenant,
        "tab": "evaluation",
        "nav": "tenants",
        "form": form,
        "run_form": EvalRunForm(),
        "sets": evalset_list(tenant=tenant),
        "runs": runs,
        "answer_runs": answer_runs,
        "modes": MODES,
        "metric_labels": [METRIC_LABELS[m] for m in METRICS],
        "answer_metric_labels": [ANSWER_METRIC_LABELS[m] for m in ANSWER_METRICS],
        "shown": RUNS_SHOWN,
    }
    template = (
        "console/rag/_evaluation_panel.html"
        if wants_fragment(request)
        else "console/rag/evaluation.html"
    )
    return render(request, template, context, status=status)


def _present(tenant: Tenant, run):
    """The run with what its row shows: per mode the metrics (overall, then per archetype),
    each formatted with its change since the set's previous run."""
    run.compare = evaluation_compare(run=run, tenant=tenant)
    deltas = (run.compare or {}).get("modes", {})
    run.groups = []
    run.span = 2 + len(MODES) * len(METRICS)  # the columns after Run
    modes = run.results.get("modes", {}) if run.status == "done" else {}
    if modes:
        names = ["overall", *sorted({a for m in modes.values() for a in m.get("archetypes", {})})]
        for name in names:
            cells, questions = [], 0
            for mode in MODES:
                result, change = modes.get(mode, {}), deltas.get(mode, {})
                if name == "overall":
                    values, delta = result.get("overall"), change.get("overall")
                else:
                    values = result.get("archetypes", {}).get(name)
                    delta = change.get("archetypes", {}).get(name)
                questions = max(questions, (values or {}).get("questions", 0))
                cells.extend(
                    {**_cell(mode, metric, values, delta), "first": n == 0}
                    for n, metric in enumerate(METRICS)
                )
            run.groups.append({"name": name, "questions": questions, "cells": cells})
    return run


def _cell(mode: str, metric: str, values: dict | None, delta: dict | None) -> dict:
    label = f"{mode} {METRIC_LABELS[metric]}"
    if not values:
        return {"label": label, "value": "—", "delta": "", "trend": ""}
    change = (delta or {}).get(metric)
    if change is None:
        shown, trend = "", ""
    else:
        shown = format_delta(change)
        trend = "same" if shown == "±0.000" else "up" if change > 0 else "down"
    return {"label": label, "value": f"{values[metric]:.3f}", "delta": shown, "trend": trend}


def _present_answers(tenant: Tenant, run):
    """An answer run with its rows: per model and policy the metrics (overall, then per
    archetype), each with its change since the set's previous answer run."""
    run.compare = answer_evaluation_compare(run=run, tenant=tenant)
    changes = (run.compare or {}).get("answers", {})
    run.groups = []
    run.span = 4 + len(ANSWER_METRICS)  # the columns after Run
    answers = run.results.get("answers", {}) if run.status == "done" else {}
    for model, by_policy in answers.items():
        for policy, result in by_policy.items():
            change = changes.get(model, {}).get(policy, {})
            groups = [("overall", result.get("overall", {}), change.get("overall"))]
            groups += [
                (name, values, change.get("archetypes", {}).get(name))
                for name, values in result.get("archetypes", {}).items()
            ]
            for name, values, delta in groups:
                run.groups.append(
                    {
                        "model": model,
                        "policy": policy,
                        "name": name,
                        "questions": values.get("questions", 0),
                        "cells": [_answer_cell(m, values, delta) for m in ANSWER_METRICS],
                    }
                )
    return run


def _answer_cell(metric: str, values: dict, delta: dict | None) -> dict:
    """Shares at three places, milliseconds and tokens/s at one; "—" where nothing was measured
    (no unanswerable question, no citation, no generation). Lower TTFT is better."""
    label = ANSWER_METRIC_LABELS[metric]
    value = values.get(metric)
    if value is None:
        return {"label": label, "value": "—", "delta": "", "trend": ""}
    timing = metric in ("ttft_p50_ms", "tokens_per_s")
    shown = f"{value:.1f}" if timing else f"{value:.3f}"
    change = (delta or {}).get(metric)
    if change is None:
        return {"label": label, "value": shown, "delta": "", "trend": ""}
    moved = f"{change:+.1f}" if timing else format_delta(change)
    better = change < 0 if metric == "ttft_p50_ms" else change > 0
    same = round(change, 1 if timing else 3) == 0
    trend = "same" if same else "up" if better else "down"
    return {"label": label, "value": shown, "delta": moved, "trend": trend}
