"""The benchmark report: var/bench/results.json, var/bench/report.md and PNG plots."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.db import connections


def environment() -> dict:
    """The machine, the versions and the settings the figures were measured with."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:
        memory_gb = None
    with connections["owner"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    versions = {"python": sys.version.split()[0], "postgresql": postgres}
    versions["pgvector"] = row[0] if row else None
    for package in (
        "django",
        "torch",
        "sentence-transformers",
        "llama-cpp-python",
        "psycopg",
        "langchain-postgres",
        "langchain-core",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu,
            "memory_gb": memory_gb,
            "platform": platform.platform(),
        },
        "versions": versions,
        "settings": {
            name: getattr(settings, name, None)
            for name in (
                "EMBEDDING_BATCH_SIZE",
                "CHUNK_MAX_TOKENS",
                "CHUNK_OVERLAP_TOKENS",
                "SEARCH_EXACT_BELOW_CHUNKS",
                "HNSW_EF_SEARCH",
                "KEYWORD_CANDIDATES",
                "KEYWORD_RANK_MAX",
                "CHUNK_MIN_TOKENS",
            )
        },
    }


def write(results: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    plots = _plots(results, out)
    (out / "report.md").write_text(markdown(results, plots))
    return [out / "results.json", out / "report.md", *plots]


def _range(d: dict, unit: str = "") -> str:
    return f"{d['median']}{unit} (min {d['min']}, max {d['max']})"


def markdown(results: dict, plots: list[Path] | None = None) -> str:
    env = results["environment"]
    m, v = env["machine"], env["versions"]
    lines = [
        "# Tenantry benchmarks",
        "",
        f"Command: `{results['command']}` (size `{results['size']}`), "
        f"{results['started']}, {results['duration_s']} s in all.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, {m['platform']}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val) + ".",
        "Settings: " + ", ".join(f"{k}={val}" for k, val in env["settings"].items()) + ".",
        "",
        "Medians with min and max over the repetitions; latencies are p50/p95 over the queries.",
        "",
    ]
    if "ingestion" in results:
        r = results["ingestion"]
        lines += [
            "## Ingestion",
            "",
            f"{r['chunks']} chunks in {r['documents']} Markdown documents.",
            "",
            "| path | chunks/s | ratio (platform / this) |",
            "| --- | --- | --- |",
            f"| platform end to end (upload -> Celery -> ready), "
            f"`{r.get('default_backend', 'torch')}` | {_range(r['end_to_end_chunks_per_s'])} | 1 |",
            f"| torch `model.encode` alone (the bound) | "
            f"{_range(r['encode_only_chunks_per_s'])} | {r['ratio_to_encode']} |",
        ]
        if "langchain_postgres_chunks_per_s" in r:
            lines.append(
                f"| langchain-postgres `add_texts` | "
                f"{_range(r['langchain_postgres_chunks_per_s'])} | "
                f"{r['ratio_to_langchain_postgres']} |"
            )
        else:
            lines.append(f"| langchain-postgres | skipped: {r.get('peer_skipped')} | |")
        if "backends" in r:
            lines += [
                "",
                "End to end per embedding backend (a fresh tenant on each, backends alternated "
                "within each repetition); the ratio to torch is the median of the repetitions' "
                "ratios to torch's run of the same repetition:",
                "",
                "| backend | chunks/s | x torch pipeline | / torch `model.encode` |",
                "| --- | --- | --- | --- |",
            ]
            for name, b in r["backends"].items():
                lines.append(
                    f"| {name} | {_range(b['chunks_per_s'])} | {b['ratio_to_torch_pipeline']} | "
                    f"{b['ratio_to_encode']} |"
                )
        backend = f", `{r['stages_backend']}`" if "stages_backend" in r else ""
        lines += ["", f"Time per stage over the whole corpus, in process{backend} (ms):", ""]
        lines += ["| stage | median | min | max |", "| --- | --- | --- | --- |"]
        for stage, s in r["stages_ms"].items():
            lines.append(f"| {stage} | {s['median']} | {s['min']} | {s['max']} |")
        lines.append("")
    if "embedding" in results:
        from .embedding import markdown as embedding_markdown

        lines += embedding_markdown(results["embedding"])
    if "search" in results:
        r = results["search"]
        lines += [
            "## Search",
            "",
            f"Server time without the query embedding (ms, p50/p95 over {r['queries']} "
            f"queries) and recall@10 of vector search against exact search. The pool holds "
            f"N chunks over {r['tenants']} tenants (one with N/2, the rest Zipf-sized); "
            "bridge, silo and langchain-postgres hold the big tenant's N/2 chunks.",
            "",
            "| N | placement | chunks searched | vector | keyword | hybrid | recall@10 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for size, s in r["sizes"].items():
            for name, p in s["placements"].items():
                chunks = p.get("chunks", s["big_tenant_chunks"])
                cells = [
                    f"{p[mode]['p50']} / {p[mode]['p95']}" if mode in p else "-"
                    for mode in ("vector", "keyword", "hybrid")
                ]
                lines.append(
                    f"| {size} | {name} | {chunks} | {' | '.join(cells)} | {p['recall_at_10']} |"
                )
        if "peer_skipped" in r:
            lines.append(f"\nlangchain-postgres skipped: {r['peer_skipped']}.")
        lines.append("")
    if "answer" in results:
        r = results["answer"]
        d, t, c = r["decode"], r["ttft"], r["cache_hits"]
        lines += [
            "## Answers",
            "",
            f"- Decode: {d['answer_path_tokens_per_s']} tokens/s through the answer path "
            f"against {d['raw_llama_cpp_tokens_per_s']} raw llama-cpp-python (ratio "
            f"{d['ratio']}; min/max {d['answer_path_min_max']} vs {d['raw_min_max']}).",
            f"- Time to first token through the API (k=5): p50 {t['p50_ms']} ms, p95 "
            f"{t['p95_ms']} ms (min {t['min_ms']}, max {t['max_ms']}, {t['requests']} requests).",
            f"- TTFT vs raw llama-cpp-python on the same tokens: {t.get('ratio_to_raw')}x (raw "
            f"{t.get('raw_full_prompt_p50_ms')} ms; from the shared prefix "
            f"{t.get('raw_from_prefix_p50_ms')} ms); prompt tokens p50 "
            f"{t.get('prompt_tokens_median')}; strict first delta p50 "
            f"{t.get('strict_first_delta_p50_ms')} ms.",
            f"- Answer cache hits: server p50 {c['server_p50_ms']} ms, max {c['server_max_ms']}.",
            "",
        ]
    if "noisy" in results:
        lines += _noisy_markdown(results["noisy"])
    if "noisy_ingest" in results:
        from .noisy_ingest import markdown as noisy_ingest_markdown

        lines += noisy_ingest_markdown(results["noisy_ingest"])
    if "overhead" in results:
        lines += _overhead_markdown(results["overhead"])
    if "load" in results:
        lines += _load_markdown(results["load"])
    if "quality" in results:
        lines += _quality_markdown(results["quality"])
    if "answers_eval" in results:
        from .answers_eval import markdown as answers_eval_markdown

        lines += answers_eval_markdown(results["answers_eval"])
    if "tenant_move" in results:
        from .tenant_move import markdown as tenant_move_markdown

        lines += tenant_move_markdown(results["tenant_move"])
    if "warm_start" in results:
        from .warm_start import markdown as warm_start_markdown

        lines += warm_start_markdown(results["warm_start"])
    for plot in plots or []:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    return "\n".join(lines)


def _quality_markdown(r: dict) -> list[str]:
    lines = [
        "## Retrieval quality",
        "",
        f"{r['pages']} pages of Debian's `{r['corpus']}` uploaded through `POST /api/v1/documents`"
        f" ({r['chunks']} chunks, ingested in {r['ingestion_s']} s, {len(r['failed'])} failed); "
        f"{r['questions']} questions (benchmarks/quality_questions.json) through "
        '`POST /api/v1/search` (k=20 documents, `group_by: "document"`). Baselines on the same '
        f"pages, in process: {r['baseline_chunk_words']}-word chunks ({r['baseline_chunks']}), "
        "the same MiniLM model, exact cosine; and that fused by RRF (k=60) with PostgreSQL "
        "full text.",
        "",
        "| retrieval | recall@5 | MRR@5 | nDCG@10 | search p50 / p95 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    latency = r.get("latency", {})
    rows = [(f"platform {mode}", s) for mode, s in r["modes"].items()]
    rows += [
        ("baseline: 250-word chunks, cosine", r["baselines"]["naive_vector"]),
        ("baseline: cosine + full text, RRF", r["baselines"]["naive_vector_fts_rrf"]),
    ]
    for label, s in rows:
        times = latency.get(label.removeprefix("platform "))
        took = f"{times['p50_ms']} / {times['p95_ms']}" if times else "-"
        lines.append(
            f"| {label} | {s['recall_at_5']} | {s['mrr_at_5']} | {s['ndcg_at_10']} | {took} |"
        )
    lines += [
        "",
        "Of the platform's first five hits: share of short chunks (< 40 words), of release "
        "notes, and of hits from a page that answers.",
        "",
        "| mode | short | release notes | answering |",
        "| --- | --- | --- | --- |",
    ]
    for mode, d in r["diagnostics"].items():
        lines.append(
            f"| {mode} | {d['short_hit_share']} | {d['release_notes_share']} "
            f"| {d['relevant_hit_share']} |"
        )
    return [*lines, ""]


def _pcts(latency: dict, endpoint: str) -> str:
    p = latency.get(endpoint, {})
    return f"{p['p50']} / {p['p95']} / {p['p99']}" if p.get("n") else "-"


def _load_markdown(r: dict) -> list[str]:
    mix, modes = r["mix"], ", ".join(f"{n} {m}" for m, n in r["modes"].items())
    lines = [
        "## Load",
        "",
        "Locust (`FastHttpUser`, one per tenant; an open-loop schedule at fixed rates) over "
        f"HTTP against gunicorn ({r['gunicorn']['workers']} process, "
        f"{r['gunicorn']['threads']} threads, platform/gunicorn.conf.py) and a Celery worker; "
        "the load generator runs on the same cores. "
        f"{r['tenants']} tenants ({modes}), {r['documents_per_tenant']} documents each. Mix: "
        f"answers {mix['answer_share']:.0%} of the rate (at most {mix['answer_max_rps']}/s, "
        f"max_tokens {mix['answer_max_tokens']}, cache off), uploads "
        f"{mix['upload_share']:.0%}, the rest hybrid searches; a second ladder leaves the "
        "answers out. Client ms of the 2xx responses, p50 / p95 / p99.",
        "",
        "| step | offered rps | requests | search | answer | upload | 5xx | 429 | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in r["steps"]:
        if s.get("skipped"):
            lines.append(
                f"| {s['name']} | {s['offered_rps']} | skipped: search p95 was past 1 s at a "
                "lower rate | | | | | | |"
            )
            continue
        cells = [_pcts(s["latency_ms"], e) for e in ("search", "answer", "upload")]
        lines.append(
            f"| {s['name']} ({s['seconds']} s) | {s['offered_rps']} | {s['requests']} | "
            f"{' | '.join(cells)} | {s['5xx']} | {s['429']} | {s['errors']} |"
        )
    best, target = r["highest_rps_search_p95_under_target"], r["target_search_p95_ms"]
    stated, q, u = r["stated"], r["429"], r["uploads"]
    by_mode = ", ".join(
        f"{m} {p['p95']}" for m, p in stated["search_by_mode_ms"].items() if p.get("n")
    )
    quiet = r["highest_rps_without_answers"]
    lines += [
        "",
        f"- **Highest offered rate with search p95 under {target} ms: "
        + (f"{best} requests/s**" if best else "none of the rates tried**")
        + " with answers in the mix; without answers: "
        + (f"{quiet} requests/s." if quiet else "none of the rates tried."),
        f"- Stated rate ({stated['offered_rps']} requests/s for {stated['seconds']} s): "
        f"search p95 by mode (ms): {by_mode}.",
        f"- 5xx: {r['5xx']}; connection errors: {r['errors']}.",
        f"- 429: {q['total']}, of which {q['expected']} where the quotas say (tight quotas: "
        f"{r['tight_quotas']}) and {q['unexpected']} unexpected.",
        f"- Uploads: {u['accepted']} accepted, {u['ready']} ready, {u['failed']} failed, "
        f"{u['pending']} still pending after {u['ready_within_s']} s: **{u['lost']} lost**.",
    ]
    if q["by_tenant"]:
        lines += ["", "| tenant | mode | endpoint | limit | 429 | admitted |"]
        lines.append("| --- | --- | --- | --- | --- | --- |")
        for row in q["by_tenant"]:
            limit = row["tight"] or f"concurrent generations ({row['kind']})"
            lines.append(
                f"| {row['tenant']} | {row['mode']} | {row['endpoint']} | {limit} | "
                f"{row['count']} | {row['admitted']} |"
            )
    if r["problems"]:
        lines += ["", "First failures:", ""] + [f"- `{p}`" for p in r["problems"][:5]]
    return [*lines, ""]


def _plots(results: dict, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = []
    if "search" in results:
        sizes = results["search"]["sizes"]
        names = sorted({n for s in sizes.values() for n in s["placements"]})
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs, p50, p95 = [], [], []
            for j, s in enumerate(sizes.values()):
                p = s["placements"].get(name)
                if p:
                    xs.append(j + i * width)
                    p50.append(p["vector"]["p50"])
                    p95.append(p["vector"]["p95"] - p["vector"]["p50"])
            ax.bar(xs, p50, width, yerr=[[0] * len(p95), p95], label=name, capsize=2)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], [f"N={k}" for k in sizes])
        ax.set_ylabel("vector search ms (p50, bar to p95)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "search_latency.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if "ingestion" in results:
        stages = results["ingestion"]["stages_ms"]
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.barh(list(stages), [s["median"] for s in stages.values()])
        ax.set_xlabel("ms over the corpus (median)")
        fig.tight_layout()
        paths.append(out / "ingestion_stages.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if "load" in results:
        paths.append(_load_plot(plt, results["load"], out / "load_p95.png"))
    return paths


def _load_plot(plt, r: dict, path: Path) -> Path:
    """p95 per endpoint against the offered rate (the ladders as lines, the stated run as
    crosses), with the search target."""
    ran = [s for s in r["steps"] if not s.get("skipped")]
    series = [
        ("mixed", "o-", "{}"),
        ("no answers", "s--", "{} (no answers)"),
        (None, "X", f"{{}} (stated rate, {r['stated']['seconds']} s)"),
    ]
    fig, ax = plt.subplots(figsize=(7, 4))
    for endpoint, colour in (("search", "C0"), ("answer", "C1"), ("upload", "C2")):
        for ladder, style, label in series:
            points = [
                (s["offered_rps"], s["latency_ms"][endpoint]["p95"])
                for s in ran
                if s.get("ladder") == ladder and s["latency_ms"].get(endpoint, {}).get("n")
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                name = label.format(endpoint)
                ax.plot(xs, ys, style, color=colour, label=name, markersize=5)
    target = r["target_search_p95_ms"]
    ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"search target {target} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered requests/s (all endpoints)")
    ax.set_ylabel("p95 ms (client, 2xx)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _row(label: str, s: dict) -> str:
    return f"| {label} | {s['p50']} | {s['p95']} | {s['min']} | {s['max']} |"


def _noisy_markdown(r: dict) -> list[str]:
    answers = ", every tenth an answer" if r.get("a_answers") else ""
    lines = [
        "## Noisy neighbour",
        "",
        f"On {r.get('server', 'the in-process client')}. Tenant A: "
        f"{r.get('a_concurrency', r.get('a_threads'))} concurrent loops of hybrid searches"
        f"{answers}, from a process of its own; limits {r['a_limits']}, "
        f"{r['a_requests_per_s']} requests/s ({r['a_requests']}). Tenant B: steady hybrid "
        "searches from another process; client ms (what B's application sees) and the "
        "server's search time (`timings.total_ms`).",
        "",
        "| B (ms) | p50 | p95 | min | max |",
        "| --- | --- | --- | --- | --- |",
        _row("alone, client", r["b_alone_ms"]),
        _row("A flooding, client", r["b_with_a_flooding_ms"]),
    ]
    if "b_alone_server_ms" in r:
        lines += [
            _row("alone, server", r["b_alone_server_ms"]),
            _row("A flooding, server", r["b_with_a_flooding_server_ms"]),
        ]
    lines += ["", f"B's p95 with A flooding / alone: client {r['b_p95_ratio']}"]
    if "b_server_p95_ratio" in r:
        lines[-1] += f", server {r['b_server_p95_ratio']}"
    return [*lines[:-1], lines[-1] + ".", ""]


def _overhead_markdown(r: dict) -> list[str]:
    lines = [
        "## API overhead",
        "",
        f"`POST /api/v1/search` (vector, k=10) on {r.get('server', 'the in-process client')}, "
        "from a client in a process of its own, against the same query embedding and SQL run "
        f"directly, {r['chunks']} chunks (ms). Server: the response's `timings.total_ms` (the "
        "search service).",
        "",
        "| measure | p50 | p95 | min | max |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in ("direct_embed_plus_sql_ms", "api_client_ms", "api_server_total_ms"):
        lines.append(_row(key, r[key]))
    lines.append(_row("overhead (client - direct)", r["overhead_ms"]))
    if "server_minus_direct_ms" in r:
        lines.append(_row("server total - direct", r["server_minus_direct_ms"]))
        lines.append(_row("client - server total", r["client_minus_server_ms"]))
    return [*lines, ""]
