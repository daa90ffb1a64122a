"""`manage.py evaluate SLUG [--set NAME] [--k 10] [--import FILE.jsonl [--name NAME]]`:
measure the tenant's retrieval (vector, keyword, hybrid) on an evaluation set, in this process
(no worker needed), and print recall@k, MRR and nDCG@10 with the change since the last run."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tenants.management.commands._base import get_tenant

from ...models import EvalRunStatus
from ...selectors import evalset_get, evalset_list
from ...services.evaluation import (
    MAX_K,
    METRICS,
    MODES,
    EvalImportError,
    evalset_import,
    evaluation_compare,
    evaluation_run,
    format_delta,
)


class Command(BaseCommand):
    help = "Evaluate a tenant's retrieval on an evaluation set (recall@k, MRR, nDCG@10)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--set", dest="set_name", help="the set (needed if there are several)")
        parser.add_argument(
            "--k", type=int, default=10, help=f"cut-off for recall and MRR (1-{MAX_K})"
        )
        parser.add_argument(
            "--import",
            dest="import_path",
            metavar="FILE.jsonl",
            help="import (or replace) a set from JSONL first, then evaluate it",
        )
        parser.add_argument("--name", help="name of the imported set (default: the file's stem)")

    def handle(self, *args, slug, set_name, k, import_path, name, **options):
        if not 1 <= k <= MAX_K:
            raise CommandError(f"--k must be between 1 and {MAX_K}.")
        if name and not import_path:
            raise CommandError("--name goes with --import.")
        if import_path and set_name:
            raise CommandError("Use --name to name the set --import creates.")
        tenant = get_tenant(slug)
        eval_set = (
            self._import(tenant, Path(import_path), name)
            if import_path
            else self._choose(tenant, set_name)
        )
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
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        for n, row in enumerate([headers, *rows]):
            out.write(
                "  ".join(
                    cell.ljust(w) if i < 2 else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
            )
            if n == 0:
                out.write("  ".join("-" * w for w in widths))
        if compare is None:
            out.write("No previous run of this set to compare with.")
        else:
            previous = compare["previous"]
            note = "" if previous["k"] == run.k else f" (its k was {previous['k']})"
            out.write(f"Changes are against run {previous['id']}{note}.")


def _cell(value: float, delta: float | None) -> str:
    return f"{value:.3f}" if delta is None else f"{value:.3f} ({format_delta(delta)})"
