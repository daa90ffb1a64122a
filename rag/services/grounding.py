"""The support check: is each sentence of an answer said by the sources it was generated from?

A 135M model on two cores will sometimes invent: a command that does not exist, a default
port, an expansion of an abbreviation. Users must never be shown an invented fact as sourced,
so every answer is checked after (or, under `strict`, while) it is generated, sentence by
sentence, against the numbered sources of its prompt: the text the model read, not whole
documents.

How a sentence is scored against one source (the method and thresholds are calibrated on the
shipped evaluation set, rag/evalsets/; see README "Answers you can check"):
- lexical coverage: the share of the sentence's content words (stop words dropped, words
  compared on their first six letters, so "postgres" matches "PostgreSQL": rag/content_words.py)
  that the source contains;
- embedding similarity: the cosine of the sentence and the source's closest sentence, with the
  retrieval embedding model;
- specifics: a number or an identifier (a word with a digit, an underscore, a dot or a dash
  inside, or a CamelCase name) that the source's matching sentence does not contain makes the
  sentence unsupported by that source, whatever the rest says: that is what invented facts
  look like ("port 12345", `pg_send_to`).
support = LEXICAL_WEIGHT * coverage + (1 - LEXICAL_WEIGHT) * similarity; a sentence is
supported by a source at SUPPORT_THRESHOLD or above, and supported when any source supports it.

Sentences that claim nothing (no content word: "Sure.") and the model's own refusals ("The
sources do not say.") are not claims: they are kept and do not count for or against
`grounded`, the share of the answer's claims that are supported.

Policies (the tenant's `answer_policy`):
- annotate: the answer as generated, each sentence marked;
- strict: unsupported claims are dropped and citations point at the sources that support each
  kept sentence; when nothing supported remains, the answer is extractive; a refusal becomes
  DECLINE_ANSWER;
- extractive: no generation: the sentences of the sources that best answer the question,
  quoted with their source numbers.

Declining (relevance_decide): before any generation, the question is compared with what was
retrieved; unless both the embedding and the words say the sources are about it, the answer
is DECLINE_ANSWER with no citations and `finish_reason` "declined", and no model runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from django.conf import settings

from ..content_words import WORD_RE, content_stems, words

DECLINE_ANSWER = "The documents do not contain an answer to this question."
POLICIES = ("annotate", "strict", "extractive")

# A second quote of an extractive answer must score this share of the first's.
EXTRACTIVE_SECOND_QUOTE = 0.8
_FENCE_RE = re.compile(r"```\w*")
_QUOTED_RE = re.compile(r'`([^`\n]{1,80})`|"([^"\n]{1,80})"|\u201c([^\u201d\n]{1,80})\u201d')
_CITATION_RE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# A sentence ends at . ! ? (not inside a number or a dotted name) followed by space, or at a
# line break.
_SENTENCE_END_RE = re.compile(
    r"(?<=[.!?])(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])*\s+|\n+|(?<=\|)\s+(?=\|)|```\w*"
)
_REFUSAL_RE = re.compile(
    r"\b(?:(?:i|we) (?:do not|don't|cannot|can't) (?:know|find|say|answer)|"
    r"(?:sources?|documents?|context|text|passages?) (?:do|does) not (?:contain|say|mention|"
    r"provide|include|specify|state)|not (?:mentioned|stated|specified|provided) in the "
    r"(?:sources?|documents?)|no (?:information|mention) (?:about|of|on)|"
    r"(?:is|are) not (?:mentioned|given|stated|specified)|unable to (?:find|answer))",
    re.IGNORECASE,
)


@dataclass
class SentenceCheck:
    """One sentence of an answer and what the sources say of it."""

    text: str
    cited: list[int]
    supported_by: list[int] = field(default_factory=list)
    support: float = 0.0
    supported: bool = False
    claim: bool = True
    kept: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Relevance:
    """How well the retrieved sources match the question, and whether that is enough."""

    similarity: float
    coverage: float
    relevant: bool


def specifics(text: str) -> set[str]:
    """Numbers and identifiers: the words an invented fact is made of."""
    found = set()
    for w in WORD_RE.findall(text):
        bare = w.strip(".-/")
        camel = any(c.isupper() for c in bare[1:]) and any(c.islower() for c in bare)
        if camel or any(c.isdigit() for c in bare) or any(c in bare for c in "_.-/"):
            found.add(bare.lower())
    return found


def quoted(text: str) -> set[str]:
    """What a sentence quotes, `code` or "a name", case and spacing aside: a source must hold
    it as written (a misspelt `bypassslr`, a heading "quoted" as if it were the role's name)."""
    spans = (next(filter(None, groups)) for groups in _QUOTED_RE.findall(text))
    return {_normalized(span) for span in spans if any(c.isalnum() for c in span)}


def number_contexts(text: str) -> dict[str, set[str]]:
    """Each bare number of `text`, with the stems of the words around it (three either side):
    "3 dimensions" is not said by a sentence whose 3 is "Gemma 3", nor "error code 415" by one
    whose 415 is another row's."""
    tokens = words(text)
    found: dict[str, set[str]] = {}
    for i, token in enumerate(tokens):
        if token.isdigit():
            near = found.setdefault(token, set())
            for other in tokens[max(0, i - 3) : i] + tokens[i + 1 : i + 4]:
                if not other.isdigit():
                    near |= content_stems(other)
    return found


def _numbers_said(numbers: dict[str, set[str]], source: dict[str, set[str]]) -> bool:
    """Whether each number of a sentence stands, in the source sentence, beside a word it
    stands beside in the sentence (one with no such word to compare passes)."""
    return all(
        not near or not source.get(number) or near & source[number]
        for number, near in numbers.items()
    )


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def strip_citations(text: str) -> str:
    return re.sub(r"\s+", " ", _CITATION_RE.sub("", text)).strip()


def _claim_text(text: str) -> str:
    """A sentence as it is checked: no citation markers, no code fences (a fence's language
    tag, "```sql", is markup, and an answer of nothing else answered nothing)."""
    return strip_citations(_FENCE_RE.sub(" ", text))


def cited_numbers(text: str) -> list[int]:
    found: list[int] = []
    for group in _CITATION_RE.findall(text):
        for part in re.split(r"\s*[,;]\s*", group):
            n = int(part)
            if n not in found:
                found.append(n)
    return found


def split_sentences(text: str) -> list[str]:
    """Sentences with their citation markers attached (a marker after the full stop belongs to
    the sentence before it)."""
    pieces, start = [], 0
    for match in _SENTENCE_END_RE.finditer(text):
        piece = text[start : match.end()].strip()
        if piece:
            pieces.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def sentence_complete(buffer: str) -> int:
    """The length of the complete sentences at the start of `buffer` (0 if none yet): used to
    check a streamed answer a sentence at a time."""
    last = 0
    for match in _SENTENCE_END_RE.finditer(buffer):
        # Only once something follows: a citation marker may still come after the full stop.
        if match.end() < len(buffer) and buffer[match.end()] != "[":
            last = match.end()
    return last


def is_claim(text: str) -> bool:
    """A sentence that says something checkable: a content word with a letter in it ("2." and
    "```sql" are list and code furniture), and not a refusal."""
    bare = _claim_text(text)
    has_word = any(any(c.isalpha() for c in stem) for stem in content_stems(bare))
    return has_word and not _REFUSAL_RE.search(bare)


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL_RE.search(text))


class SourceIndex:
    """The sources of one answer, split and embedded once, checked against many sentences."""

    def __init__(self, sources: Sequence, question: str = ""):
        self.sources = list(sources)
        # The question's words are what retrieval matched: a sentence is judged on what it
        # adds to them, and one that adds nothing ("The URL must be direct." to "Which URL must
        # be direct?") answers nothing.
        self.question_stems = content_stems(question)
        self.numbers = [s.n for s in self.sources]
        self.sentences: list[list[str]] = []
        self.stems: list[set[str]] = []
        self.specifics: list[list[set[str]]] = []  # per source sentence, with the title's
        self.sentence_stems: list[list[set[str]]] = []
        self.sentence_text: list[list[str]] = []  # normalized, for what an answer quotes
        self.sentence_numbers: list[list[dict[str, set[str]]]] = []
        for source in self.sources:
            parts = [p for p in split_sentences(source.text) if content_stems(p)] or [source.text]
            self.sentences.append(parts)
            full = f"{source.title}\n{source.text}"
            self.stems.append(content_stems(full))
            title = _specifics_with_parts(source.title)
            self.specifics.append([_specifics_with_parts(p) | title for p in parts])
            self.sentence_stems.append([content_stems(p) for p in parts])
            self.sentence_text.append([_normalized(p) for p in parts])
            self.sentence_numbers.append([number_contexts(p) for p in parts])
        self._vectors: dict[tuple[int, int], np.ndarray] = {}

    def ensure(self, pairs) -> None:
        """Embed the source sentences `pairs` ((source, sentence) indexes) not embedded yet, in
        one batch. Lazily, and only sentences sharing a word with what is checked: embedding
        every sentence of every retrieved chunk cost more than the generation it checked."""
        missing = [p for p in dict.fromkeys(pairs) if p not in self._vectors]
        if missing:
            from ..embedding import embed_texts

            vectors = embed_texts([self.sentences[i][j] for i, j in missing])
            self._vectors.update(zip(missing, vectors, strict=True))

    def candidates(self, stems: set[str]) -> list[list[int]]:
        """Per source, its sentences that share a content word with `stems`."""
        return [
            [j for j, own in enumerate(per_source) if own & stems]
            for per_source in self.sentence_stems
        ]

    def check(self, text: str, vector: np.ndarray | None = None) -> SentenceCheck:
        """Score one answer sentence (with its citation markers) against every source."""
        cited = cited_numbers(text)
        bare = _claim_text(text)
        check = SentenceCheck(text=text, cited=cited, claim=is_claim(text))
        if not check.claim or not self.sources:
            check.supported = not check.claim
            return check
        if vector is None:
            from ..embedding import embed_texts

            vector = embed_texts([bare])[0]
        full = stems = content_stems(bare)
        specific = specifics(bare)
        quotes, numbers = quoted(bare), number_contexts(bare)
        if self.question_stems:
            added = stems - self.question_stems
            if not added:
                check.claim, check.supported = False, True  # a restatement claims nothing
                return check
            stems = added
        weight = settings.GROUNDING_LEXICAL_WEIGHT
        candidates = self.candidates(full)
        self.ensure((i, j) for i, js in enumerate(candidates) for j in js)
        scores = []
        for i, js in enumerate(candidates):
            coverage = len(stems & self.stems[i]) / len(stems)
            if not js:  # no sentence of this source shares a word with this one
                scores.append(0.0 if specific or quotes else weight * coverage)
                continue
            similarities = [float(self._vectors[(i, j)] @ vector) for j in js]
            score = weight * coverage + (1 - weight) * max(max(similarities), 0.0)
            # The source sentence this one says again (judged on all its words): its numbers
            # and names must be there, not elsewhere in the source (a table's "20 MiB" is not
            # the next row's "1 MiB"), each number beside what it counts, and what it quotes
            # as written.
            aligned = max(
                range(len(js)),
                key=lambda at: (
                    weight * len(full & self.sentence_stems[i][js[at]]) / len(full)
                    + (1 - weight) * similarities[at]
                ),
            )
            j = js[aligned]
            if (
                specific - self.specifics[i][j]
                or any(q not in self.sentence_text[i][j] for q in quotes)
                or not _numbers_said(numbers, self.sentence_numbers[i][j])
            ):
                score = min(score, settings.GROUNDING_SUPPORT_THRESHOLD / 2)
            scores.append(score)
        check.support = round(max(scores), 4)
        check.supported_by = [
            n
            for n, score in sorted(zip(self.numbers, scores, strict=True), key=lambda p: -p[1])
            if score >= settings.GROUNDING_SUPPORT_THRESHOLD
        ]
        check.supported = bool(check.supported_by)
        return check

    def check_all(self, texts: Iterable[str]) -> list[SentenceCheck]:
        from ..embedding import embed_texts

        texts = list(texts)
        claims = [_claim_text(t) for t in texts]
        vectors = embed_texts(claims) if texts and self.sources else [None] * len(texts)
        return [self.check(t, v) for t, v in zip(texts, vectors, strict=True)]


def _specifics_with_parts(text: str) -> set[str]:
    """A source's specifics, and each part of a dotted or dashed one ("v1.2-rc" gives "v1.2",
    "rc"...), the leading parts of a dotted one ("1.18.0" gives "1.18") and every bare number,
    so a sentence quoting part of a name is not refused.

    Not the bare numbers inside a name: "3" of "Python 3.11" or of "127.0.0.1" would let a
    sentence say "3 dimensions" of a source that says 384.
    """
    found = specifics(text)
    for item in list(found):
        found.update(p for p in re.split(r"[_.\-/]", item) if p and not p.isdigit())
        dotted = item.split(".")
        found.update(".".join(dotted[:k]) for k in range(2, len(dotted)))
    found.update(w for w in words(text) if w.isdigit())
    return found


def grounded_share(checks: Sequence[SentenceCheck]) -> float:
    """The share of the kept claims that are supported (1.0 when there are none)."""
    claims = [c for c in checks if c.kept and c.claim]
    if not claims:
        return 1.0
    return round(sum(c.supported for c in claims) / len(claims), 4)


def strict_sentence(check: SentenceCheck) -> str | None:
    """The sentence as `strict` shows it: None unless it is a supported claim, which then cites
    the sources that support it (the cited ones that do, else the best one)."""
    if not check.claim or not check.supported:
        return None
    keep = [n for n in check.cited if n in check.supported_by] or check.supported_by[:1]
    return strip_citations(check.text) + " " + "".join(f"[{n}]" for n in keep)


def extractive_quotes(question: str, index: SourceIndex, *, limit: int = 2) -> list[SentenceCheck]:
    """The sentences of the sources that best answer `question`, as quotes citing their
    source, or none when even the best is below EXTRACTIVE_MIN_SCORE (then the answer
    declines). Scored by the question's content words each sentence holds and by embedding
    similarity, half each; a second quote only if it is nearly as good as the first."""
    from ..embedding import embed_texts

    if not index.sources:
        return []
    question_stems = content_stems(question)
    query = embed_texts([question])[0]
    candidates = index.candidates(question_stems)
    if not any(candidates):  # no sentence shares a word with the question: judge all
        candidates = [list(range(len(parts))) for parts in index.sentences]
    index.ensure((i, j) for i, js in enumerate(candidates) for j in js)
    scored = []
    for i, js in enumerate(candidates):
        for j in js:
            part = index.sentences[i][j]
            overlap = len(question_stems & index.sentence_stems[i][j]) / max(1, len(question_stems))
            similarity = float(index._vectors[(i, j)] @ query)
            scored.append((0.5 * overlap + 0.5 * similarity, -i, -j, index.numbers[i], part))
    scored.sort(reverse=True)
    if not scored or scored[0][0] < settings.EXTRACTIVE_MIN_SCORE:
        return []
    quotes = []
    for score, _, _, n, part in scored[:limit]:
        if quotes and score < scored[0][0] * EXTRACTIVE_SECOND_QUOTE:
            break
        bare = strip_citations(part).strip("|").strip()
        quote = f'"{bare}" [{n}]'
        quotes.append(SentenceCheck(quote, [n], [n], round(score, 4), True))
    return quotes


def relevance_decide(
    *, question: str, hits: Sequence, similarities: dict[int, float] | None
) -> Relevance:
    """Whether the retrieved hits are about the question: the best vector similarity of a hit
    (from search, per chunk) and the share of the question's content words found in one hit
    must both reach their thresholds. Both, because each alone lets through questions on the
    corpus's topic that it cannot answer ("Does Tenantry support Oracle?" is close to the
    database pages by embedding, and "Who is the CEO of Tenantry?" shares the name); their
    distinctive words are in no source."""
    if not hits:
        return Relevance(0.0, 0.0, False)
    similarity = max((similarities or {}).get(h.chunk_id, 0.0) for h in hits)
    stems = content_stems(question)
    coverage = 0.0
    if stems:
        coverage = max(
            len(stems & content_stems(f"{h.title}\n{h.heading_path}\n{h.text}")) / len(stems)
            for h in hits
        )
    relevant = (
        similarity >= settings.ANSWER_MIN_SIMILARITY and coverage >= settings.ANSWER_MIN_COVERAGE
    )
    return Relevance(round(similarity, 4), round(coverage, 4), relevant)
