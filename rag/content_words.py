"""Content words and their stems: how the support check and the prompt's source choice
compare a question, an answer and a source by their words.

Why a stem of six letters, not a stemmer: the words that matter in technical questions are
names and their inflections ("postgres" and "PostgreSQL", "opens" and "open"), and a prefix
matches those without a language model of English.
"""

from __future__ import annotations

import re

STEM_CHARS = 6
# A word: letters, digits and underscores, with dots, dashes and slashes inside (`v1.2-rc`,
# `platform/run.py`), so a name is one word.
WORD_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*[A-Za-z0-9_]|[A-Za-z0-9]")
_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just let me more most my myself no nor not now of off on once only
    or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    upon us very was we were what when where which while who whom why will with would you
    your yours yourself yourselves may might must shall one ones use used using uses like
    yes way get gets got make makes made see sure well example etc e g ie eg"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD_RE.findall(text)]


def stem(word: str) -> str:
    """The first STEM_CHARS letters, after a plural or third-person "s" ("opens" and "open",
    "keeps" and "keep" are one word; longer words share their first six letters anyway)."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and word.isalpha():
        word = word[:-1]
    return word[:STEM_CHARS]


def content_stems(text: str) -> set[str]:
    """The stems of the content words of `text`; an identifier also gives those of its parts
    (`app_role_superuser`: app, role, superuser), as people ask in words what docs name."""
    stems = set()
    for w in words(text):
        parts = [w, *re.split(r"[_.\-/]", w)] if any(c in w for c in "_.-/") else [w]
        for part in parts:
            if part not in STOP_WORDS and (len(part) > 2 or part.isdigit()):
                stems.add(stem(part))
    return stems
