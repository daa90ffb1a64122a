"""Answer metrics on answer results (pure functions): is the expected fact there, did the answer
decline, do its citations hold, and their means per model, policy and archetype.

The definitions (README "Evaluation"):
- accuracy: answerable questions whose answer states every expected fact. A fact matches the
  answer case- and spacing-insensitively (Markdown backticks and asterisks dropped), as whole
  words where it begins or ends with one ("543" is not in "5432", "DATABASE_URL" not in
  "OWNER_DATABASE_URL"); a list of alternatives matches when any one does.
- refusals: unanswerable questions whose answer declines: `finish_reason` "declined", the
  platform's own wordings (DECLINE_ANSWER, NO_SOURCES_ANSWER), the support check's refusal
  test, or one of REFUSAL_PHRASES.
- citation precision: of the (kept sentence, cited source) pairs of the answers, the share
  whose source is among the sentence's `supported_by`; pooled over the group, so an answer
  citing ten sources weighs ten times one citing one.
- groundedness: the mean `grounded` of the answers that did not decline (a declined answer
  claims nothing).
- TTFT: the median `timings.ttft_ms` of those answers; tokens/s: generated tokens after the
  first over the time from the first token to the last, pooled over the answers that
  generated more than one token.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable

ANSWER_METRICS = (
    "accuracy",
    "refusals",
    "groundedness",
    "citation_precision",
    "ttft_p50_ms",
    "tokens_per_s",
)
ANSWER_METRIC_LABELS = {
    "accuracy": "Accuracy",
    "refusals": "Refusals",
    "groundedness": "Grounded",
    "citation_precision": "Citation precision",
    "ttft_p50_ms": "TTFT p50 ms",
    "tokens_per_s": "Tokens/s",
}
# How a model says it does not know, beyond what the support check already recognises
# (grounding.is_refusal); matched on the normalised answer.
REFUSAL_PHRASES = (
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "could not find",
    "couldn't find",
    "cannot find",
    "can't find",
    "unable to find",
    "no information",
    "not mentioned",
    "does not mention",
    "do not mention",
    "does not contain",
    "do not contain",
    "not provided in",
)
_MARKUP = str.maketrans({"`": " ", "*": " ", "\u2019": "'", "\u2018": "'"})


def normalise(text: str) -> str:
    """Lower case, curly quotes straightened, Markdown code and emphasis marks dropped, runs of
    whitespace made one space."""
    return " ".join(text.translate(_MARKUP).casefold().split())


def fact_present(answer: str, fact: str | list[str]) -> bool:
    """Whether `answer` states `fact` (a string, or a list of alternatives)."""
    if isinstance(fact, list):
        return any(fact_present(answer, alternative) for alternative in fact)
    wanted = normalise(fact)
    if not wanted:
        return False
    before = r"(?<!\w)" if re.match(r"\w", wanted) else ""
    after = r"(?!\w)" if re.search(r"\w$", wanted) else ""
    return re.search(before + re.escape(wanted) + after, normalise(answer)) is not None


def facts_present(answer: str, facts: Iterable[str | list[str]]) -> bool:
    """Every fact stated (False when there are none: nothing to be right about)."""
    facts = list(facts)
    return bool(facts) and all(fact_present(answer, fact) for fact in facts)


def refused(result: dict, *, decline_texts: Iterable[str] = ()) -> bool:
    """Whether the answer says the documents do not answer the question."""
    if result.get("finish_reason") == "declined":
        return True
    answer = normalise(result.get("answer") or "")
    if any(normalise(text) and normalise(text) in answer for text in decline_texts):
        return True
    if any(phrase in answer for phrase in REFUSAL_PHRASES):
        return True
    from ..grounding import is_refusal

    return is_refusal(answer)


def citation_counts(result: dict) -> tuple[int, int]:
    """(cited sources that support their sentence, cited sources), over the kept sentences."""
    supported = cited = 0
    for sentence in result.get("sentences") or []:
        if not sentence.get("kept", True):
            continue
        backing = set(sentence.get("supported_by") or [])
        for n in sentence.get("cited") or []:
            cited += 1
            supported += n in backing
    return supported, cited


def answer_score(
    *,
    result: dict,
    expected_facts: list,
    unanswerable: bool,
    archetype: str = "",
    decline_texts: Iterable[str] = (),
) -> dict:
    """One question's answer reduced to what the means need (stored with the run, so a run's
    figures can be checked question by question)."""
    declined = refused(result, decline_texts=decline_texts)
    supported, cited = citation_counts(result)
    timings = result.get("timings") or {}
    tokens = (result.get("usage") or {}).get("completion_tokens", 0)
    generated = result.get("finish_reason") != "declined"
    ttft, total = timings.get("ttft_ms"), timings.get("total_ms")
    decode_s = (total - ttft) / 1000 if generated and tokens > 1 and ttft and total else None
    grounded = result.get("grounded")
    answer = result.get("answer") or ""
    return {
        "archetype": archetype,
        "unanswerable": unanswerable,
        "accurate": None if unanswerable else facts_present(answer, expected_facts),
        "refused": declined,
        "finish_reason": result.get("finish_reason"),
        "grounded": grounded if generated and grounded is not None else None,
        "cited": cited,
        "cited_supported": supported,
        "ttft_ms": ttft if generated else None,
        "decode_tokens": tokens - 1 if decode_s else 0,
        "decode_s": decode_s or 0.0,
    }


def answer_means(scores: list[dict]) -> dict:
    """The metrics of a group of scored answers; a metric with nothing to measure is None."""
    answerable = [s for s in scores if not s["unanswerable"]]
    unanswerable = [s for s in scores if s["unanswerable"]]
    grounded = [s["grounded"] for s in scores if s["grounded"] is not None]
    cited = sum(s["cited"] for s in scores)
    ttfts = [s["ttft_ms"] for s in scores if s["ttft_ms"] is not None]
    decode_s = sum(s["decode_s"] for s in scores)
    return {
        "accuracy": _share(s["accurate"] for s in answerable),
        "refusals": _share(s["refused"] for s in unanswerable),
        "false_refusals": _share(s["refused"] for s in answerable),
        "groundedness": round(statistics.fmean(grounded), 4) if grounded else None,
        "citation_precision": (
            round(sum(s["cited_supported"] for s in scores) / cited, 4) if cited else None
        ),
        "ttft_p50_ms": round(statistics.median(ttfts), 1) if ttfts else None,
        "tokens_per_s": (
            round(sum(s["decode_tokens"] for s in scores) / decode_s, 1) if decode_s else None
        ),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "questions": len(scores),
    }


def answer_aggregate(scores: list[dict]) -> dict:
    """Means overall and per archetype (questions without one count only overall)."""
    groups: dict[str, list[dict]] = {}
    for score in scores:
        if score["archetype"]:
            groups.setdefault(score["archetype"], []).append(score)
    return {
        "overall": answer_means(scores),
        "archetypes": {name: answer_means(groups[name]) for name in sorted(groups)},
    }


def _share(values: Iterable[bool]) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None
