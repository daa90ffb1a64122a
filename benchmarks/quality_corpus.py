"""The retrieval-quality corpus: Django's documentation as Debian installs it
(`python-django-doc`), and the questions of benchmarks/quality_questions.json, each with the
pages that answer it.

Why a Debian package: a public, versioned documentation set that is on the machine without a
download at run time, large enough (500+ prose pages) for ranking to matter.
"""

from __future__ import annotations

import json
from pathlib import Path

DOCS_PACKAGE = "python-django-doc"
DOCS_DIR = Path("/usr/share/doc/python-django-doc/html")
QUESTIONS = Path(__file__).with_name("quality_questions.json")
# The small version `make test` runs (tests/rag/test_ranking_floor.py).
FLOOR = Path(__file__).with_name("quality_floor.json")

# Sphinx's generated pages (module source, indexes, the search page) are not documentation a
# user would upload; the release notes stay in, as the realistic distractors they are.
_SKIP_DIRS = {"_modules", "_sources", "_static", "_images", "_downloads"}
_SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html", "contents.html"}


class CorpusMissing(RuntimeError):
    pass


def corpus_pages(root: Path = DOCS_DIR) -> list[str]:
    """The documentation pages, as paths relative to `root`, in a stable order."""
    if not root.is_dir():
        raise CorpusMissing(
            f"{root} is missing: install the Debian package {DOCS_PACKAGE} "
            f"(`apt-get install -y {DOCS_PACKAGE}`, which `make test-packages` does as root)."
        )
    pages = []
    for path in root.rglob("*.html"):
        relative = path.relative_to(root)
        if relative.parts[0] in _SKIP_DIRS or str(relative) in _SKIP_PAGES:
            continue
        pages.append(str(relative))
    return sorted(pages)


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return json.loads(path.read_text())


def select(
    pages: list[str], questions: list[dict], *, page_count: int, question_count: int, root: Path
) -> tuple[list[str], list[dict]]:
    """The pages to ingest and the questions to ask; 0 means all of them.

    A smaller run keeps the `question_count` questions whose answer pages are smallest (so it
    stays cheap) and fills up to `page_count` with the smallest other pages as distractors:
    deterministic, and every kept question can be answered from what is ingested.
    """
    known = set(pages)
    for question in questions:
        missing = [p for p in question["pages"] if p not in known]
        if missing:
            raise ValueError(f"question {question['q']!r} names unknown pages {missing}")
    if not page_count and not question_count:
        return pages, questions
    size = {p: (root / p).stat().st_size for p in pages}
    chosen = sorted(questions, key=lambda q: (sum(size[p] for p in q["pages"]), q["q"]))
    chosen = chosen[: question_count or len(questions)]
    selected = {p for q in chosen for p in q["pages"]}
    for page in sorted(pages, key=lambda p: (size[p], p)):
        if page_count and len(selected) >= page_count:
            break
        selected.add(page)
    return sorted(selected), [q for q in questions if q in chosen]


def subset_select(
    pages: list[str], questions: list[dict], path: Path
) -> tuple[list[str], list[dict]]:
    """The pages and questions a subset file names, checked against the corpus: every named
    question exists and every page that answers one is among the pages."""
    subset = json.loads(path.read_text())
    by_text = {q["q"]: q for q in questions}
    missing = [text for text in subset["questions"] if text not in by_text]
    chosen = sorted(set(subset["pages"]))
    if missing or not set(chosen) <= set(pages):
        raise ValueError(f"{path.name} names unknown questions {missing} or pages")
    asked = [by_text[text] for text in subset["questions"]]
    unanswerable = [q["q"] for q in asked if not set(q["pages"]) <= set(chosen)]
    if unanswerable:
        raise ValueError(f"{path.name} leaves out the pages that answer {unanswerable}")
    return chosen, asked
