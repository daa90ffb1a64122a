"""An answer's policy applied to its text as it is generated: annotate, strict or extractive.

Why here and not in the decode loop: the policy needs the sources (to check sentences) and the
question (to quote the right sentences), not the model; the answer session feeds it the model's
deltas and passes on what it lets through. Under `strict` the answer streams a checked
sentence at a time, so an unsupported sentence never reaches the client, even for a moment;
under `annotate` the deltas stream as generated and the check runs at the end. Either way the
check's result (`grounding()`) goes in the final event of a stream and in the response body.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from django.conf import settings

from .grounding import (
    DECLINE_ANSWER,
    SentenceCheck,
    SourceIndex,
    cited_numbers,
    extractive_quotes,
    grounded_share,
    is_refusal,
    sentence_complete,
    split_sentences,
    strict_sentence,
)


class CheckedAnswer:
    """The answer text a policy lets through, and the support check of every sentence."""

    def __init__(self, *, policy: str, question: str, sources: Sequence, declined: bool = False):
        self.policy = policy
        self.question = question
        self.index = SourceIndex(sources, question)
        self.declined = declined
        self.checks: list[SentenceCheck] = []
        self.answer = ""
        self.raw_answer: str | None = None  # what the model generated, if it ran
        self.check_ms = 0.0

    # --- without the model: declined, or extractive ------------------------------------------

    def without_model(self) -> str:
        """The whole answer when no model runs: DECLINE_ANSWER, or quotes of the sources."""
        if not self.declined:
            self._extract()
        if self.declined:
            self.answer = DECLINE_ANSWER
        return self.answer

    def _extract(self) -> None:
        started = time.perf_counter()
        quotes = extractive_quotes(self.question, self.index)
        self.check_ms += (time.perf_counter() - started) * 1000
        if not quotes:
            self.declined = True
            return
        self.checks = quotes
        self.answer = " ".join(q.text for q in quotes)

    # --- with the model -----------------------------------------------------------------------

    def stream(self, deltas: Iterator[str]) -> Iterator[str]:
        """Pass on the model's deltas as the policy allows."""
        self.raw_answer = ""
        if self.policy == "strict":
            yield from self._strict(deltas)
            return
        for delta in deltas:
            self.raw_answer += delta
            self.answer += delta
            yield delta
        self._timed(lambda: self.checks.extend(self.index.check_all(split_sentences(self.answer))))

    def _strict(self, deltas: Iterator[str]) -> Iterator[str]:
        buffer = ""
        for delta in deltas:
            self.raw_answer += delta
            buffer += delta
            cut = sentence_complete(buffer)
            if cut:
                for piece in split_sentences(buffer[:cut]):
                    kept = self._timed(lambda p=piece: self._keep(p))
                    if kept:
                        yield kept
                buffer = buffer[cut:]
        for piece in split_sentences(buffer):
            kept = self._timed(lambda p=piece: self._keep(p))
            if kept:
                yield kept
        if not any(c.kept for c in self.checks):
            yield self._fallback()

    def _keep(self, piece: str) -> str:
        check = self.index.check(piece)
        text = strict_sentence(check)
        check.kept = text is not None
        self.checks.append(check)
        if text is None:
            return ""
        out = (" " if self.answer else "") + text
        self.answer += out
        return out

    def _fallback(self) -> str:
        """Nothing supported remains: the model's refusal, or nothing it said held. Quote the
        sources if they answer the question, else decline."""
        refused = all(not c.claim for c in self.checks) and any(
            is_refusal(c.text) for c in self.checks
        )
        dropped = self.checks
        self.checks = []
        if not refused:
            self._timed(self._extract)
        else:
            self.declined = True
        self.checks = dropped + self.checks  # the dropped sentences stay visible, not kept
        if self.declined:
            self.answer = DECLINE_ANSWER
        return self.answer

    def _timed(self, work):
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.check_ms += (time.perf_counter() - started) * 1000

    # --- the result ---------------------------------------------------------------------------

    def cited(self) -> list[int] | None:
        """The source numbers the answer cites, when only those should be listed (strict,
        extractive, declined); None: every source the model read (annotate)."""
        if self.declined:
            return []
        if self.policy == "annotate" and self.raw_answer is not None:
            return None
        return cited_numbers(self.answer)

    def grounding(self) -> dict:
        return {
            "policy": self.policy,
            "grounded": grounded_share(self.checks),
            "declined": self.declined,
            "sentences": [c.as_dict() for c in self.checks],
            **({"raw_answer": self.raw_answer} if self.raw_answer is not None else {}),
        }


def grounding_sources(prompt_sources: Sequence, hits: Sequence) -> list:
    """What answers are checked against: the prompt's sources with the whole text of their
    chunks (a sentence the model took from a part of a chunk its prompt trimmed is still that
    source's, and quotes read better whole), then the other retrieved hits, numbered on, which
    the model did not read but which may support what it said, and which a strict answer that
    keeps nothing may quote."""
    from ..generation.prompt import PromptSource

    full = {h.chunk_id: h for h in hits}
    out = []
    for s in prompt_sources:
        hit = full.get(s.chunk_id)
        text = hit.text if hit is not None else s.text
        out.append(PromptSource(s.n, s.chunk_id, s.document_id, s.title, text))
    seen = {s.chunk_id for s in prompt_sources}
    for hit in hits:
        if hit.chunk_id not in seen:
            n, document = len(out) + 1, str(hit.document_id)
            out.append(PromptSource(n, hit.chunk_id, document, hit.title or "", hit.text))
    return out


def hit_sources(hits: Sequence, limit: int) -> list:
    """Numbered sources straight from the hits (extractive answers build no prompt)."""
    from ..generation.prompt import PromptSource

    return [
        PromptSource(n, h.chunk_id, str(h.document_id), h.title or "", h.text)
        for n, h in enumerate(hits[:limit], start=1)
    ]


def decline_wanted(relevant: bool) -> bool:
    return not relevant and settings.ANSWER_DECLINE
