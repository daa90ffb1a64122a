"""Evaluation: the tenant's sets (import from JSONL, run), and its runs with their metrics per
mode and the change since the set's previous run. A run is computed by a Celery worker
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

from rag.selectors import evalrun_get, evalrun_list, evalset_get, evalset_list
from rag.services.evaluation import (
    MAX_K,
    MAX_NAME,
    METRICS,
    MODES,
    EvalImportError,
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
            'id", ...], "archetype": "analyst"}. Up to '
            f"{filesizeformat(MAX_FILE_BYTES)}."
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
        run = evalrun_queue(tenant=tenant, eval_set=eval_set, k=form.cleaned_data["k"])
        messages.success(request, f"Run {run.pk} of “{eval_set.name}” queued.")
    else:
        messages.error(request, f"k: {' '.join(form.errors['k'])}")
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
    context = {"tenant": tenant, "run": _present(tenant, run), "modes": MODES}
    return render(request, "console/rag/_evaluation_run_row.html", context)


def _render(request, tenant: Tenant, form: EvalImportForm, status: int = 200):
    runs = [_present(tenant, run) for run in evalrun_list(tenant=tenant, limit=RUNS_SHOWN)]
    context = {
        "tenant": tenant,
        "tab": "evaluation",
        "nav": "tenants",
        "form": form,
        "run_form": EvalRunForm(),
        "sets": evalset_list(tenant=tenant),
        "runs": runs,
        "modes": MODES,
        "metric_labels": [METRIC_LABELS[m] for m in METRICS],
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
