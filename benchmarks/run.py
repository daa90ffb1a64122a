"""`make bench`: the platform measured side by side with its bounds and its peers, on a
throwaway embedded PostgreSQL and Redis (config.test_settings), on this machine.

    python benchmarks/run.py [--size small|default|large] [--out DIR] [section ...]

Sections: ingestion, embedding, search, answer, noisy, noisy_ingest, overhead, load, quality,
answers_eval, tenant_move, warm_start (all by default).
`--size small` is what the smoke test in `make test` runs; `large` adds the 1M-chunk search.
The report goes to var/bench/ (report.md, results.json, *.png).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SECTIONS = (
    "ingestion",
    "embedding",
    "search",
    "answer",
    "noisy",
    "noisy_ingest",
    "overhead",
    "load",
    "quality",
    "answers_eval",
    "tenant_move",
    "warm_start",
)

_DEFAULT = {
    "ingestion": {"docs": 24, "paragraphs": 20, "repetitions": 3},
    "embedding": {"pages": 60, "questions": 40, "chunks": 384, "passes": 3},
    "search": {"sizes": [10_000, 100_000], "tenants": 100, "queries": 50},
    "answer": {"documents": 24, "rounds": 5, "max_tokens": 128, "questions": 24},
    "noisy": {"chunks": 2000, "queries": 60, "flooders": 4, "answers": True},
    "noisy_ingest": {"a_documents": 1000, "b_repetitions": 3},
    "overhead": {"chunks": 2000, "queries": 50},
    "load": {
        "tenants": 20,
        "documents": 3,
        "rates": [5, 10, 15, 20, 30, 40],
        "rates_without_answers": [5, 10, 15, 20, 30],
        "step_seconds": 15,
        "rate": 10,
        "seconds": 60,
        "answer_share": 0.05,
        "answer_max_rps": 0.2,
        "upload_share": 0.05,
        "answer_max_tokens": 8,
        "tight": {"search_per_hour": 30, "ingest_per_hour": 1},
    },
    "quality": {"pages": 0, "questions": 0},  # every page and every question
    "answers_eval": {"answerable": 0, "unanswerable": 0, "all_models": True},  # the whole set
    "tenant_move": {"sizes": [10_000, 100_000]},
    "warm_start": {"chunks": 2000, "restarts": 3, "searches": 30},
}
SIZES = {
    "small": {
        "ingestion": {"docs": 3, "paragraphs": 6, "repetitions": 1},
        "embedding": {"pages": 30, "questions": 6, "chunks": 64, "passes": 1},
        "search": {"sizes": [2000], "tenants": 8, "queries": 8},
        "answer": {"documents": 3, "rounds": 1, "max_tokens": 24, "questions": 2},
        "noisy": {"chunks": 300, "queries": 12, "flooders": 2, "answers": False},
        "noisy_ingest": {"a_documents": 20, "b_repetitions": 1},
        "overhead": {"chunks": 300, "queries": 8},
        "load": {
            "tenants": 3,
            "documents": 1,
            "rates": [],
            "rates_without_answers": [],
            "step_seconds": 5,
            "rate": 5,
            "seconds": 5,
            "answer_share": 0.05,
            "answer_max_rps": 0.25,
            "upload_share": 0.2,
            "answer_max_tokens": 4,
            "tight": {"search_per_hour": 3},
        },
        "quality": {"pages": 30, "questions": 6},
        "answers_eval": {
            "answerable": 1,
            "unanswerable": 1,
            "all_models": False,
            "max_tokens": 16,
        },
        "tenant_move": {"sizes": [2000]},
        "warm_start": {"chunks": 300, "restarts": 1, "searches": 5},
    },
    "default": _DEFAULT,
    "large": {**_DEFAULT, "search": {**_DEFAULT["search"], "sizes": [10_000, 100_000, 1_000_000]}},
}


def run(*, size: str, sections: list[str], out: Path, peer: bool = True) -> dict:
    """Run the sections at `size` and write the report; Django must be set up and migrated."""
    from . import report

    params = SIZES[size]
    started = time.perf_counter()
    results: dict = {
        "command": "python benchmarks/run.py --size " + size + " " + " ".join(sections),
        "size": size,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {s: params[s] for s in sections},
        "environment": report.environment(),
    }
    for section in sections:
        section_started = time.perf_counter()
        results[section] = _section(section, params[section], peer)
        results[section]["seconds"] = round(time.perf_counter() - section_started, 1)
        print(f"{section} done in {results[section]['seconds']} s", flush=True)
    results["duration_s"] = round(time.perf_counter() - started, 1)
    report.write(results, out)
    return results


def _section(name: str, params: dict, peer: bool) -> dict:
    if name == "ingestion":
        from .ingestion import bench_ingestion

        return bench_ingestion(**params, peer=peer)
    if name == "embedding":
        from .embedding import bench_embedding

        return bench_embedding(**params)
    if name == "search":
        from .search import bench_search

        return bench_search(**params, peer=peer)
    if name == "answer":
        from .answer import bench_answer

        return bench_answer(**params)
    if name == "noisy":
        from .noisy import bench_noisy

        return bench_noisy(**params)
    if name == "noisy_ingest":
        from .noisy_ingest import bench_noisy_ingest

        return bench_noisy_ingest(**params)
    if name == "overhead":
        from .overhead import bench_overhead

        return bench_overhead(**params)
    if name == "load":
        from .load import bench_load

        return bench_load(**params)
    if name == "quality":
        from .quality import bench_quality

        return bench_quality(**params)
    if name == "answers_eval":
        from .answers_eval import bench_answers_eval

        return bench_answers_eval(**params)
    if name == "tenant_move":
        from .tenant_move import bench_tenant_move

        return bench_tenant_move(**params)
    if name == "warm_start":
        from .warm_start import bench_warm_start

        return bench_warm_start(**params)
    raise ValueError(f"unknown section {name!r}; sections are: {', '.join(SECTIONS)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--no-peer", action="store_true", help="skip langchain-postgres")
    parser.add_argument("sections", nargs="*", help=", ".join(SECTIONS) + " (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; sections are: {', '.join(SECTIONS)}")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from benchmarks.run import run as run_sections  # as a package, for relative imports

    results = run_sections(
        size=args.size,
        sections=args.sections or list(SECTIONS),
        out=args.out,
        peer=not args.no_peer,
    )
    print(f"report: {args.out / 'report.md'} ({results['duration_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
