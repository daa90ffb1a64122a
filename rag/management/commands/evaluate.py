"""`manage.py evaluate SLUG [--set NAME | --import FILE.jsonl [--name NAME] | --example] [--k N]
[--answers [--model NAME ...] [--all-models] [--policy POLICY ...] [--max-tokens N]]`:
measure the tenant's retrieval (vector, keyword, hybrid) on an evaluation set, in this process
(no worker needed), and print recall@k, MRR and nDCG@10 with the change since the last run;
with --answers, its answers instead (per model and policy: accuracy, refusals, groundedness,
citation precision, TTFT, tokens/s). --example loads the shipped example set and the
project's own documents it asks about into the tenant first."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tenants.context import tenant_context
from tenants.management.commands._base import get_tenant

from ...models import EvalRunStatus
from ...selectors import evalset_get, evalset_list
from ...services.evaluation import (
    ANSWER_METRICS,
    MAX_K,
    METRICS,
    MODES,
    POLICIES,
    EvalImportError,
    answer_evaluation_compare,
    answer_evaluation_run,
    answer_models,
    evalset_import,
    evaluation_compare,
    evaluation_run,
    example_load,
    format_delta,
)
from ...services.evaluation.answers import DEFAULT_K, answer_questions, answer_steps


class Command(BaseCommand):
    help = (
        "Evaluate a tenant's retrieval (recall@k, MRR, nDCG@10) or, with --answers, its answers "
        "on an evaluation set."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--set", dest="set_name", help="the set (needed if there are several)")
        parser.add_argument(
            "--k",
            type=int,
            help=f"cut-off for recall and MRR; sources of an answer (1-{MAX_K}; default 10, "
            f"answers {DEFAULT_K})",
        )
        parser.add_argument(
            "--import",
            dest="import_path",
            metavar="FILE.jsonl",
            help="import (or replace) a set from JSONL first, then evaluate it",
        )
        parser.add_argument("--name", help="name of the imported set (default: the file's stem)")
        parser.add_argument(
            "--example",
            action="store_true",
            help="ingest the project's documentation and import the shipped example set first",
        )
        parser.add_argument("--answers", action="store_true", help="evaluate answers")
        parser.add_argument(
            "--model",
            dest="models",
            action="append",
            metavar="NAME",
            help="a model to evaluate (repeat for several; default: the platform default)",
        )
        parser.add_argument("--all-models", action="store_true", help="every registered model")
        parser.add_argument(
            "--policy",
            dest="policies",
            action="append",
            choices=POLICIES,
            help="an answer policy to evaluate (repeat for several; default: all three)",
        )
        parser.add_argument("--max-tokens", type=int, help="longest answer (default: the API's)")

    def handle(self, *args, slug, set_name, k, import_path, name, example, answers, **options):
        k = (DEFAULT_K if answers else 10) if k is None else k
        if not 1 <= k <= MAX_K:
            raise CommandError(f"--k must be between 1 and {MAX_K}.")
        if name and not import_path:
            raise CommandError("--name goes with --import.")
        if import_path and set_name:
            raise CommandError("Use --name to name the set --import creates.")
        if example and (import_path or set_name):
            raise CommandError("--example evaluates the example set; leave out --set/--import.")
        answer_options = ("models", "all_models", "policies", "max_tokens")
        if not answers and any(options.get(o) for o in answer_options):
            raise CommandError(
                "--model, --all-models, --policy and --max-tokens go with --answers."
            )
        tenant = get_tenant(slug)
        if example:
            self.stdout.write("Loading the example set and the project's documentation...")
            eval_set = evalset_get(tenant=tenant, set_id=example_load(tenant=tenant).pk)
            self.stdout.write(
                f"Example set {eval_set.name!r}: {eval_set.question_count} questions."
            )
        elif import_path:
            eval_set = self._import(tenant, Path(import_path), name)
        else:
            eval_set = self._choose(tenant, set_name)
        if answers:
            return self._answers(tenant, eval_set, k, **options)
        with tqdm(
            total=eval_set.question_count * len(MODES),
            desc="evaluate",
            unit="search",
            file=self.stderr,
        ) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            run = evaluation_run(tenant=tenant, eval_set=eval_set, k=k, progress=progress)
        if run.status != EvalRunStatus.DONE:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        self._report(run, evaluation_compare(run=run, tenant=tenant))

    def _answers(self, tenant, eval_set, k, *, models, all_models, policies, max_tokens, **_):
        from ...generation.registry import UnknownModel, model_names

        if max_tokens is not None and max_tokens < 1:
            raise CommandError("--max-tokens must be at least 1.")
        try:
            names = answer_models(model_names() if all_models else models)
        except UnknownModel as exc:
            raise CommandError(f"{exc} Registered: {', '.join(model_names())}.") from exc
        policies = [p for p in POLICIES if p in (policies or POLICIES)]
        with tenant_context(tenant):
            questions = answer_questions(list(eval_set.questions.all()))
        if not questions:
            raise CommandError(
                f"Set {eval_set.name!r} has no question with expected_facts or unanswerable."
            )
        with tqdm(
            total=answer_steps(questions, len(names), len(policies)),
            desc="answers",
            unit="answer",
            file=self.stderr,
        ) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            run = answer_evaluation_run(
                tenant=tenant,
                eval_set=eval_set,
                models=names,
                policies=policies,
                k=k,
                max_tokens=max_tokens,
                progress=progress,
            )
        if run.status != EvalRunStatus.DONE:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        self._report_answers(run, answer_evaluation_compare(run=run, tenant=tenant))

    def _report_answers(self, run, compare: dict | None) -> None:
        out = self.stdout
        s = run.settings
        out.write(
            f"Set {run.eval_set.name!r}, answer run {run.pk}: {s.get('answerable', 0)} "
            f"answerable and {s.get('unanswerable', 0)} unanswerable questions, k={run.k}, "
            f"max_tokens={s.get('max_tokens')}."
        )
        models = ", ".join(f"{m['name']} ({m['file']})" for m in s.get("models", []))
        out.write(f"Models: {models}. Policies: {', '.join(s.get('policies', []))}.")
        headers = ["model", "policy", "group", "questions", "accuracy", "refusals", "grounded"]
        headers += ["cit.prec", "TTFT p50 ms", "tok/s"]
        rows = []
        for model, by_policy in run.results["answers"].items():
            for policy, result in by_policy.items():
                deltas = (compare or {}).get("answers", {}).get(model, {}).get(policy, {})
                groups = [("overall", result["overall"], deltas.get("overall"))]
                groups += [
                    (group, values, deltas.get("archetypes", {}).get(group))
                    for group, values in result["archetypes"].items()
                ]
                for group, values, delta in groups:
                    cells = [model, policy, group, str(values["questions"])]
                    cells += [
                        _answer_cell(metric, values.get(metric), (delta or {}).get(metric))
                        for metric in ANSWER_METRICS
                    ]
                    rows.append(cells)
        _table(out, headers, rows, left=3)
        if compare is None:
            out.write("No previous answer run of this set to compare with.")
        else:
            out.write(f"Changes are against answer run {compare['previous']['id']}.")

    def _import(self, tenant, path: Path, name: str | None):
        try:
            with path.open("rb") as lines:
                imported = evalset_import(tenant=tenant, name=name or path.stem, lines=lines)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        except EvalImportError as exc:
            raise CommandError(f"{path}: {exc}. Nothing was imported.") from exc
        eval_set = evalset_get(tenant=tenant, set_id=imported.pk)
        self.stdout.write(f"Imported set {eval_set.name!r}: {eval_set.question_count} questions.")
        return eval_set

    def _choose(self, tenant, set_name: str | None):
        if set_name:
            eval_set = evalset_get(tenant=tenant, name=set_name)
            if eval_set is None:
                raise CommandError(f"Tenant {tenant.slug!r} has no evaluation set {set_name!r}.")
            return eval_set
        sets = evalset_list(tenant=tenant)
        if not sets:
            raise CommandError(
                f"Tenant {tenant.slug!r} has no evaluation set; "
                "import one with --import FILE.jsonl."
            )
        if len(sets) > 1:
            names = ", ".join(s.name for s in sets)
            raise CommandError(
                f"Tenant {tenant.slug!r} has several sets; choose one with --set: {names}."
            )
        return sets[0]

    def _report(self, run, compare: dict | None) -> None:
        out = self.stdout
        s = run.settings
        out.write(
            f"Set {run.eval_set.name!r}, run {run.pk}: {s.get('questions', 0)} questions, "
            f"k={run.k}, {s.get('documents_ready', 0)} ready documents."
        )
        out.write(
            f"Settings: {s.get('embedding_model')} ({s.get('embedding_model_path')}), chunks "
            f"{s.get('chunk_max_tokens')}/{s.get('chunk_overlap_tokens')} tokens, HNSW m="
            f"{s.get('hnsw_m')} ef_construction={s.get('hnsw_ef_construction')} ef_search="
            f"{s.get('hnsw_ef_search')}, keyword candidates {s.get('keyword_candidates')}."
        )
        headers = ["mode", "group", "questions", f"recall@{run.k}", "MRR", "nDCG@10"]
        rows = []
        for mode in MODES:
            result = run.results["modes"][mode]
            deltas = (compare or {}).get("modes", {}).get(mode, {})
            groups = [("overall", result["overall"], deltas.get("overall"))]
            groups += [
                (name, values, deltas.get("archetypes", {}).get(name))
                for name, values in result["archetypes"].items()
            ]
            for group, values, delta in groups:
                cells = [mode, group, str(values["questions"])]
                cells += [_cell(values[m], (delta or {}).get(m)) for m in METRICS]
                rows.append(cells)
        _table(out, headers, rows, left=2)
        if compare is None:
            out.write("No previous run of this set to compare with.")
        else:
            previous = compare["previous"]
            note = "" if previous["k"] == run.k else f" (its k was {previous['k']})"
            out.write(f"Changes are against run {previous['id']}{note}.")


def _cell(value: float, delta: float | None) -> str:
    return f"{value:.3f}" if delta is None else f"{value:.3f} ({format_delta(delta)})"


def _answer_cell(metric: str, value: float | None, delta: float | None) -> str:
    """Shares at three places; milliseconds and tokens/s at one. "-" where nothing was
    measured (no unanswerable question, no citation, no generation)."""
    if value is None:
        return "-"
    if metric in ("ttft_p50_ms", "tokens_per_s"):
        shown = f"{value:.1f}"
        return shown if delta is None else f"{shown} ({delta:+.1f})"
    return _cell(value, delta)


def _table(out, headers: list[str], rows: list[list[str]], *, left: int) -> None:
    """Columns padded to their widest cell; the first `left` columns are text."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for n, row in enumerate([headers, *rows]):
        out.write(
            "  ".join(
                cell.ljust(w) if i < left else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            out.write("  ".join("-" * w for w in widths))
