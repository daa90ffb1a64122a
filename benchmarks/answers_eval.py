"""Answer quality on the shipped example set (rag/evalsets/tenantry_docs.jsonl): the project's
own documentation (README.md, docs/) ingested into a fresh pool tenant, every question answered
through the answer path (k=5, temperature 0, cache off) by every registered model under each
answer policy (annotate, strict, extractive), scored by the answer evaluation
(rag/services/evaluation/answer_metrics.py): accuracy, refusals, groundedness, citation
precision, TTFT p50 and decode tokens/s, per model x policy and per archetype.

Targets (issue 16), for the default model under `strict`: accuracy >= 0.8, refusals >= 0.8,
groundedness >= 0.9; shown as met or not. At `--size small` only the first answerable and
unanswerable questions are asked, of the default model, with the documents they need.
"""

from __future__ import annotations

import json
import time

TARGETS = {"accuracy": 0.8, "refusals": 0.8, "groundedness": 0.9}
TARGET_POLICY = "strict"
UNLIMITED = 1_000_000_000
COLUMNS = (
    ("accuracy", "accuracy"),
    ("refusals", "refusals"),
    ("groundedness", "grounded"),
    ("citation_precision", "cit.prec"),
    ("ttft_p50_ms", "TTFT p50 ms"),
    ("tokens_per_s", "tok/s"),
    ("false_refusals", "declined answerable"),
)
ARCHETYPE_COLUMNS = COLUMNS[:3]


def bench_answers_eval(
    *,
    answerable: int = 0,
    unanswerable: int = 0,
    all_models: bool = True,
    max_tokens: int | None = None,
) -> dict:
    """The section: `answerable` / `unanswerable` questions of the set (0: all), every
    registered model (or only the default), max_tokens (None: the API's default)."""
    from rag.generation.registry import default_model_name, model_names
    from rag.services.evaluation import POLICIES, answer_evaluation_run

    tenant = _tenant()
    started = time.perf_counter()
    eval_set, documents = _load(tenant, answerable, unanswerable)
    loaded_s = round(time.perf_counter() - started, 1)
    default = default_model_name()
    models = model_names() if all_models else [default]
    started = time.perf_counter()
    run = answer_evaluation_run(
        tenant=tenant, eval_set=eval_set, models=models, policies=POLICIES, max_tokens=max_tokens
    )
    if run.status != "done":
        raise RuntimeError(f"answer evaluation failed: {run.error}")
    rows = [
        {"model": model, "policy": policy, **result["overall"]}
        for model, by_policy in run.results["answers"].items()
        for policy, result in by_policy.items()
    ]
    strict = run.results["answers"][default][TARGET_POLICY]["overall"]
    targets = {
        metric: {
            "target": bound,
            "value": strict[metric],
            "met": strict[metric] is not None and strict[metric] >= bound,
        }
        for metric, bound in TARGETS.items()
    }
    result = {
        "set": eval_set.name,
        "documents": documents,
        "load_s": loaded_s,
        "answer_s": round(time.perf_counter() - started, 1),
        "default_model": default,
        "models": models,
        "rows": rows,
        "archetypes": {
            model: {policy: r["archetypes"] for policy, r in by_policy.items()}
            for model, by_policy in run.results["answers"].items()
        },
        "targets": targets,
        "settings": run.settings,
        "details": run.results["details"],
    }
    print("\n".join(table_lines(result)), flush=True)
    return result


def _tenant():
    from tenants.services.provisioning import tenant_create
    from tenants.services.quotas import quota_set

    tenant = tenant_create(slug=f"bench-answers-eval-{int(time.time())}", mode="pool")
    quota_set(  # the evaluation measures answers, not the quotas and token budgets
        tenant=tenant,
        answer_per_hour=UNLIMITED,
        tokens_per_hour=UNLIMITED,
        tokens_per_day=UNLIMITED,
    )
    return tenant


def _load(tenant, answerable: int, unanswerable: int):
    """The whole example set (example_load), or its first questions of each kind with only
    the documents they name."""
    from rag.services.evaluation import evalset_import, example_load
    from rag.services.evaluation.example import (
        EXAMPLE_DOCUMENTS,
        EXAMPLE_FILE,
        EXAMPLE_SET,
        example_documents,
    )

    if not answerable and not unanswerable:
        return example_load(tenant=tenant), list(EXAMPLE_DOCUMENTS)
    from rag.services.documents import document_submit
    from rag.services.ingest import document_ingest

    items = [json.loads(line) for line in EXAMPLE_FILE.read_text().splitlines() if line.strip()]
    chosen = [i for i in items if not i.get("unanswerable")][:answerable]
    chosen += [i for i in items if i.get("unanswerable")][:unanswerable]
    needed = sorted({name for item in chosen for name in item.get("relevant", [])})
    paths = example_documents()
    for name in needed:
        submission = document_submit(
            tenant=tenant,
            data=paths[name].read_bytes(),
            filename=paths[name].name,
            external_id=name,
            enqueue=False,
        )
        document_ingest(tenant=tenant, document_id=submission.document.id)
    lines = [json.dumps(item) for item in chosen]
    return evalset_import(tenant=tenant, name=EXAMPLE_SET, lines=lines), needed


def _value(metric: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if metric in ("ttft_p50_ms", "tokens_per_s") else f"{value:.3f}"


def table_lines(r: dict) -> list[str]:
    """The model x policy table and the targets, as Markdown (the report and stdout)."""
    s = r["settings"]
    lines = [
        f"Set `{r['set']}`: {s['answerable']} answerable and {s['unanswerable']} unanswerable "
        f"questions about {', '.join(r['documents'])}; k={s['k']}, max_tokens={s['max_tokens']}, "
        f"temperature 0, cache off; {r['answer_s']} s of answering.",
        "",
        "| model | policy | " + " | ".join(label for _, label in COLUMNS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for row in r["rows"]:
        cells = [_value(metric, row.get(metric)) for metric, _ in COLUMNS]
        lines.append(f"| {row['model']} | {row['policy']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per archetype (who asks):",
        "",
        "| model | policy | archetype | questions | "
        + " | ".join(label for _, label in ARCHETYPE_COLUMNS)
        + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in ARCHETYPE_COLUMNS) + " |",
    ]
    for model, by_policy in r["archetypes"].items():
        for policy, groups in by_policy.items():
            for name, values in groups.items():
                cells = [_value(metric, values.get(metric)) for metric, _ in ARCHETYPE_COLUMNS]
                lines.append(
                    f"| {model} | {policy} | {name} | {values['questions']} | "
                    + " | ".join(cells)
                    + " |"
                )
    lines += ["", f"Targets ({r['default_model']}, `{TARGET_POLICY}`):", ""]
    for metric, t in r["targets"].items():
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"- {metric} >= {t['target']}: {_value(metric, t['value'])}, {verdict}")
    return [*lines, ""]


def markdown(r: dict) -> list[str]:
    return ["## Answer quality", "", *table_lines(r)]
