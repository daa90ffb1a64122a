"""Answer benchmarks (issue targets, on the default model and this machine's CPU):

1. Decode tokens/s through the answer path (the answer service streaming deltas, as the API
   and the console use it) against raw llama-cpp-python `generate` on the same model, prompt
   and sampling. Target: ratio >= 0.9.
2. Time to first token for k=5, measured end to end through the API (in-process client,
   streaming): authentication, quota, query embedding, retrieval, prompt, queue and prompt
   evaluation. Target: p50 < 1500 ms.
"""

from __future__ import annotations

import statistics
import time

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
    from rag.generation.decode import sampling_params
    from rag.generation.gate import get_gate
    from rag.services.answer import answer_prepare

    question = "Describe in detail everything the sources say about the harbours and libraries."
    ours, raw, produced = [], [], []
    for _ in range(rounds):
        session = answer_prepare(
            tenant=tenant,
            question=question,
            k=5,
            max_tokens=max_tokens,
            temperature=0,
            use_cache=False,
        ).start()
        session.model.llm.reset()  # both sides evaluate the whole prompt
        for _delta in session.deltas():
            pass
        stats = session.stats
        if stats.completion_tokens < 16:
            raise RuntimeError("the answer was too short to time decoding")
        ours.append((stats.completion_tokens - 1) / (stats.finished_at - stats.first_token_at))
        produced.append(stats.completion_tokens)
        gate = get_gate()
        model = gate.acquire()
        try:
            raw.append(
                _raw_decode(
                    model, session.prompt.tokens, stats.completion_tokens, sampling_params(0)
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
        "ratio": round(ratio, 3),
        "completion_tokens": produced,
        "target_ratio": 0.9,
    }


def bench_ttft(key: str, questions_limit: int = 24) -> dict:
    from django.test import Client

    client = Client(SERVER_NAME="localhost")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    times, prompt_tokens = [], []
    questions = _questions()[:questions_limit]
    warm = min(4, len(questions))
    for i, question in enumerate(questions[:warm] + questions):
        started = time.perf_counter()
        response = client.post(
            "/api/v1/answer",
            {"question": question, "k": 5, "max_tokens": 8, "stream": True, "cache": False},
            content_type="application/json",
            **headers,
        )
        if response.status_code != 200:
            raise RuntimeError(f"answer failed: {response.status_code}")
        stream = iter(response.streaming_content)
        first = next(stream)
        elapsed = (time.perf_counter() - started) * 1000
        if not first.startswith(b"event: delta"):
            raise RuntimeError(f"expected a delta first, got {first[:200]!r}")
        rest = b"".join(stream)
        response.close()
        if i >= warm:  # the first (up to) four warm the caches
            times.append(elapsed)
            prompt_tokens.append(int(rest.split(b'"prompt_tokens":')[1].split(b",")[0]))
    times.sort()
    return {
        "k": 5,
        "requests": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, round(len(times) * 0.95) - 1)], 1),
        "min_ms": round(times[0], 1),
        "max_ms": round(times[-1], 1),
        "prompt_tokens_median": statistics.median(prompt_tokens),
        "target_p50_ms": 1500,
    }


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
    return {
        "decode": bench_decode(tenant, rounds=rounds, max_tokens=max_tokens),
        "ttft": bench_ttft(key, questions_limit=questions),
        "cache_hits": bench_cache_hits(key, requests=max(5, questions)),
    }
