"""Answer benchmarks (issue targets, on the default model and this machine's CPU):

1. Decode tokens/s through the answer path (the answer service streaming deltas, as the API
   and the console use it) against raw llama-cpp-python `generate` on the same model, prompt
   and sampling. Target: ratio >= 0.95.
2. Time to first token for k=5 through the API on a real gunicorn (platform/gunicorn.conf.py,
   streaming over loopback HTTP): authentication, quota, query embedding, retrieval, prompt,
   queue and prompt evaluation. Against raw llama-cpp-python evaluating the very same prompt
   tokens (the prompt is rebuilt in this process: same code, data and model file) from an
   empty cache, and, for honesty, from the shared prefix the gate keeps (rag/generation/
   gate.py). Targets: p50 <= 600 ms and <= 1.15x raw. With where the time goes (in process,
   the same questions: embedding, retrieval, prompt building, queue, prompt evaluation) and
   the prompt tokens per answer.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

PLACES = ["harbour", "library", "observatory", "bakery", "museum", "depot", "clinic", "garden"]
TOWNS = ["Aldwick", "Brennan", "Corrow", "Dunmere", "Elsby", "Farrow", "Glenhollow", "Hartley"]
THINGS = ["lanterns", "bicycles", "maps", "violins", "telescopes", "kettles", "ledgers", "looms"]


def _documents(count: int, seed: int = 5) -> list[str]:
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(count):
        town = TOWNS[d % len(TOWNS)]
        lines = [f"# {town} report {d}"]
        for s in range(12):
            place, thing = rng.choice(PLACES), rng.choice(THINGS)
            hour, count_ = int(rng.integers(6, 11)), int(rng.integers(2, 90))
            lines.append(
                f"## {place.title()} {s}\n\nThe {place} in {town} opens at {hour} o'clock and "
                f"keeps {count_} {thing}. Visitors may borrow the {thing} for a week. The "
                f"{place} was rebuilt after the flood and its staff repair old {thing} in the "
                "winter months."
            )
        docs.append("\n\n".join(lines))
    return docs


def _tenant_with_documents(documents: int = 24):
    from rag.services.documents import document_submit
    from rag.services.ingest import document_ingest
    from tenants.services.apikeys import apikey_create
    from tenants.services.provisioning import tenant_create

    tenant = tenant_create(slug=f"bench-answer-{int(time.time())}", mode="pool")
    for text in _documents(documents):
        submission = document_submit(tenant=tenant, data=text.encode())
        document_ingest(tenant=tenant, document_id=submission.document.id)
    _, key = apikey_create(tenant=tenant, scopes=["query"])
    return tenant, key


def _questions() -> list[str]:
    return [
        f"When does the {place} in {town} open and what does it keep?"
        for town in TOWNS
        for place in PLACES[:3]
    ]


def _raw_decode(model, tokens: list[int], count: int, sampling: dict) -> float:
    """Tokens/s of raw llama-cpp-python over `count` tokens (first token excluded)."""
    model.llm.reset()
    first = last = None
    n = 0
    for _ in model.llm.generate(tokens, **sampling):
        n += 1
        last = time.perf_counter()
        if first is None:
            first = last
        if n >= count:
            break
    return (n - 1) / (last - first)


def bench_decode(tenant, rounds: int = 5, max_tokens: int = 128) -> dict:
    from rag import compute_thread
    from rag.generation.decode import sampling_params
    from rag.generation.gate import get_gate
    from rag.services.answer import answer_prepare

    # A question the sources answer (else the platform declines without generating), and an
    # application instruction for length: SYSTEM_PROMPT asks for one short sentence.
    question = (
        "When does the harbour in Aldwick open, what does it keep and what do its staff repair?"
    )
    instructions = "Write a long, detailed report of at least 200 words."
    ours, raw, produced, strict = [], [], [], []
    for _ in range(rounds):
        # `annotate` checks the answer after its last token; `strict` checks each sentence as
        # it completes, between tokens: timed too, beside it.
        for policy in ("annotate", "strict"):
            session = answer_prepare(
                tenant=tenant,
                question=question,
                k=5,
                max_tokens=max_tokens,
                temperature=0,
                use_cache=False,
                instructions=instructions,
                policy=policy,
            ).start()
            for _delta in session.deltas():
                pass
            stats = session.stats
            if stats.completion_tokens < 16:
                raise RuntimeError("the answer was too short to time decoding")
            # To the last token decoded: a support check after it is not decoding.
            rate = (stats.completion_tokens - 1) / (stats.decoded_at - stats.first_token_at)
            (ours if policy == "annotate" else strict).append(rate)
        produced.append(stats.completion_tokens)
        gate = get_gate()
        model = gate.acquire(session.model)
        try:
            # On the compute thread, as the answer path runs: raw on another thread would pay
            # for a second OpenMP team (rag/compute_thread.py), and make both slower.
            raw.append(
                compute_thread.run(
                    _raw_decode,
                    model,
                    session.prompt.tokens,
                    stats.completion_tokens,
                    sampling_params(0),
                )
            )
        finally:
            gate.release()
    ratio = statistics.median(ours) / statistics.median(raw)
    return {
        "answer_path_tokens_per_s": round(statistics.median(ours), 1),
        "raw_llama_cpp_tokens_per_s": round(statistics.median(raw), 1),
        "answer_path_min_max": [round(min(ours), 1), round(max(ours), 1)],
        "raw_min_max": [round(min(raw), 1), round(max(raw), 1)],
        "policy": "annotate",
        "strict_tokens_per_s": round(statistics.median(strict), 1),
        "strict_ratio": round(statistics.median(strict) / statistics.median(raw), 3),
        "ratio": round(ratio, 3),
        "completion_tokens": produced,
        "target_ratio": 0.95,
    }


TTFT_TARGET_MS = 600
TTFT_TARGET_RATIO = 1.15


def bench_ttft(tenant, key: str, questions_limit: int = 24) -> dict:
    """TTFT through a real gunicorn, then the same prompts raw and the in-process breakdown.

    The server is started and stopped here: while it serves nothing, it takes no CPU from
    the raw measurements that follow.
    """
    from tests.server import WebServer

    questions = _questions()[:questions_limit]
    warm = min(4, len(questions))
    server = WebServer(
        Path(tempfile.mkdtemp(prefix="tenantry-bench-ttft-")), threads=8, collect_static=False
    )
    server.start()
    try:
        for question in questions[:warm]:  # models loaded, caches warm
            _http_answer(server.port, key, question, "annotate")
        # `annotate` streams each token as it comes: the first delta is the first token.
        # `strict` (the default policy) holds each sentence back until it is checked.
        served = [_http_answer(server.port, key, q, "annotate") for q in questions]
        held = [_http_answer(server.port, key, q, "strict") for q in questions]
    finally:
        server.stop()
    ttft = sorted(s["ttft_ms"] for s in served)
    prompt_tokens = [s["prompt_tokens"] for s in served]
    breakdown, raw = _breakdown_and_raw(tenant, questions, [s["prompt_tokens"] for s in served])
    raw_p50 = statistics.median(raw["full_ms"])
    return {
        "k": 5,
        "server": "gunicorn (platform/gunicorn.conf.py, 1 process, 8 threads), loopback HTTP",
        "requests": len(ttft),
        "p50_ms": round(statistics.median(ttft), 1),
        "p95_ms": round(ttft[max(0, round(len(ttft) * 0.95) - 1)], 1),
        "min_ms": round(ttft[0], 1),
        "max_ms": round(ttft[-1], 1),
        "policy": "annotate",
        "server_ttft_p50_ms": round(statistics.median(s["timings"]["ttft_ms"] for s in served), 1),
        "strict_first_delta_p50_ms": round(statistics.median(s["ttft_ms"] for s in held), 1),
        "prompt_tokens_median": statistics.median(prompt_tokens),
        "prompt_tokens_min_max": [min(prompt_tokens), max(prompt_tokens)],
        "sources_median": statistics.median(breakdown.pop("sources")),
        "raw_full_prompt_p50_ms": round(raw_p50, 1),
        "raw_from_prefix_p50_ms": round(statistics.median(raw["from_prefix_ms"]), 1),
        "prefix_tokens": raw["prefix_tokens"],
        "ratio_to_raw": round(statistics.median(ttft) / raw_p50, 3),
        "prompt_eval_tokens_per_s": round(
            statistics.median(
                p / (ms / 1000) for p, ms in zip(prompt_tokens, raw["full_ms"], strict=True)
            ),
            1,
        ),
        "in_process_p50_ms": breakdown,
        "target_p50_ms": TTFT_TARGET_MS,
        "target_ratio": TTFT_TARGET_RATIO,
    }


def _http_answer(port: int, key: str, question: str, policy: str) -> dict:
    """One streamed answer over HTTP: client ms to the first `delta` event, and the final
    event's usage and timings."""
    body = json.dumps(
        {
            "question": question,
            "k": 5,
            "max_tokens": 8,
            "stream": True,
            "cache": False,
            "policy": policy,
        }
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        started = time.perf_counter()
        connection.request(
            "POST",
            "/api/v1/answer",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"answer failed: {response.status} {response.read()[:300]!r}")
        first = response.readline()
        elapsed = (time.perf_counter() - started) * 1000
        if not first.startswith(b"event: delta"):
            raise RuntimeError(f"expected a delta first, got {first[:200]!r}")
        rest = response.read()
    finally:
        connection.close()
    done = rest.rsplit(b"event: done\n", 1)[1].split(b"data: ", 1)[1].split(b"\n\n")[0]
    final = json.loads(done)
    if final.get("finish_reason") == "declined" or not final["usage"]["prompt_tokens"]:
        raise RuntimeError(f"{question!r} was answered without the model: {final}")
    return {
        "ttft_ms": elapsed,
        "prompt_tokens": final["usage"]["prompt_tokens"],
        "timings": final["timings"],
    }


def _breakdown_and_raw(tenant, questions: list[str], served_tokens: list[int]):
    """Where TTFT goes (in process, through the answer service), and raw llama-cpp-python's
    TTFT on each prompt's tokens: from an empty cache, and from the shared prefix."""
    from rag import compute_thread
    from rag.generation.gate import get_gate, prefix_tokens
    from rag.services.answer import answer_prepare

    stages: dict[str, list[float]] = {
        k: []
        for k in ("embed", "retrieve", "prompt_build", "admission_queue", "prompt_eval", "total")
    }
    sources, full, from_prefix, prefix_len = [], [], [], 0
    for question, expected in zip(questions, served_tokens, strict=True):
        session = answer_prepare(
            tenant=tenant, question=question, k=5, max_tokens=8, temperature=0, use_cache=False
        )
        built = time.perf_counter()
        session.start()
        for _delta in session.deltas():
            pass
        if session._gate_at is None:
            raise RuntimeError(f"no generation for {question!r} (declined?)")
        stats, search = session.stats, session.search_timings
        tokens = session.prompt.tokens
        if len(tokens) != expected:  # the server must have built this very prompt
            raise RuntimeError(f"prompt of {len(tokens)} tokens here, {expected} on the server")
        search_end = session.started + search.get("total_ms", 0) / 1000
        stages["embed"].append(search.get("embed_ms", 0.0))
        stages["retrieve"].append(search.get("search_ms", 0.0))
        stages["prompt_build"].append((built - search_end) * 1000)
        stages["admission_queue"].append((session._gate_at - built) * 1000)
        stages["prompt_eval"].append((stats.first_token_at - session._gate_at) * 1000)
        stages["total"].append((stats.first_token_at - session.started) * 1000)
        sources.append(len(session.prompt.sources))
        gate = get_gate()
        model = gate.acquire(session.model)
        try:
            prefix = prefix_tokens(model)
            prefix_len = len(prefix)
            full.append(compute_thread.run(_raw_ttft, model, tokens, []))
            from_prefix.append(compute_thread.run(_raw_ttft, model, tokens, prefix))
        finally:
            gate.release()
    breakdown = {k: round(statistics.median(v), 1) for k, v in stages.items()}
    breakdown["sources"] = sources
    return breakdown, {"full_ms": full, "from_prefix_ms": from_prefix, "prefix_tokens": prefix_len}


def _raw_ttft(model, tokens: list[int], prefix: list[int]) -> float:
    """Milliseconds from `generate` to its first token, the cache holding `prefix` only."""
    from rag.generation.decode import sampling_params

    llm = model.llm
    llm.reset()
    if prefix:
        llm.eval(prefix)
    started = time.perf_counter()
    for _token in llm.generate(tokens, **sampling_params(0)):
        break
    return (time.perf_counter() - started) * 1000


def bench_cache_hits(key: str, requests: int = 30) -> dict:
    """Server time of answers served from the answer cache (target: under 10 ms)."""
    from django.test import Client

    client = Client(SERVER_NAME="localhost")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    body = {"question": _questions()[0], "k": 5, "max_tokens": 16, "temperature": 0}
    client.post("/api/v1/answer", body, content_type="application/json", **headers)  # fill
    times = []
    for _ in range(requests):
        reply = client.post("/api/v1/answer", body, content_type="application/json", **headers)
        data = reply.json()
        if not data.get("cached"):
            raise RuntimeError("expected a cache hit")
        times.append(data["timings"]["total_ms"])
    times.sort()
    return {
        "requests": len(times),
        "server_p50_ms": round(statistics.median(times), 2),
        "server_max_ms": round(times[-1], 2),
        "target_p50_ms": 10,
    }


def bench_answer(
    *, documents: int = 24, rounds: int = 5, max_tokens: int = 128, questions: int = 24
) -> dict:
    tenant, key = _tenant_with_documents(documents)
    with _always_generating():
        return {
            "decode": bench_decode(tenant, rounds=rounds, max_tokens=max_tokens),
            "ttft": bench_ttft(tenant, key, questions_limit=questions),
            "cache_hits": bench_cache_hits(key, requests=max(5, questions)),
            "decline": "off (ANSWER_DECLINE=false): every question is timed through the model",
        }


@contextlib.contextmanager
def _always_generating():
    """ANSWER_DECLINE off here and in the server this bench starts (it inherits the
    environment): what is timed is generation, and a question the relevance check turns
    down would be timed as a decline, which runs no model."""
    from django.conf import settings

    saved_env, saved = os.environ.get("ANSWER_DECLINE"), settings.ANSWER_DECLINE
    os.environ["ANSWER_DECLINE"], settings.ANSWER_DECLINE = "false", False
    try:
        yield
    finally:
        settings.ANSWER_DECLINE = saved
        if saved_env is None:
            os.environ.pop("ANSWER_DECLINE", None)
        else:
            os.environ["ANSWER_DECLINE"] = saved_env
