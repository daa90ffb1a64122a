"""Right-sized sources: no more context than the question needs, and the part it needs."""

from dataclasses import dataclass

import pytest


@dataclass
class Hit:
    chunk_id: int
    document_id: str
    title: str
    text: str
    score: float


@pytest.fixture(scope="module")
def model():
    from rag.generation.model import get_model

    return get_model()


def test_hits_far_below_the_best_are_left_out_and_the_best_always_stays(settings):
    from rag.generation.prompt import relevant_hits

    settings.ANSWER_MAX_SOURCES = 5
    settings.ANSWER_SOURCE_MIN_SCORE_RATIO = 0.9
    hits = [Hit(i, "d", "t", "x", score) for i, score in enumerate([0.05, 0.048, 0.03, 0.047])]
    assert [h.chunk_id for h in relevant_hits(hits)] == [0, 1]  # stops at the first weak one
    settings.ANSWER_SOURCE_MIN_SCORE_RATIO = 2.0  # nothing else could pass
    assert [h.chunk_id for h in relevant_hits(hits)] == [0]
    settings.ANSWER_MAX_SOURCES = 0
    assert [h.chunk_id for h in relevant_hits(hits)] == [0]


def test_a_second_source_must_hold_something_of_the_question_the_first_does_not(settings):
    from rag.generation.prompt import relevant_hits

    settings.ANSWER_MAX_SOURCES, settings.ANSWER_SOURCE_MIN_SCORE_RATIO = 5, 0.5
    texts = [
        "The harbour in Aldwick opens at 7 o'clock.",
        "The harbour in Brennan opens at 9 o'clock.",  # nothing the first lacks
        "The Aldwick harbour keeps 12 lanterns.",  # what it keeps: asked, not yet held
        "The Aldwick harbour keeps 12 lanterns in winter.",  # keeps again
    ]
    hits = [Hit(i, "d", "Report", text, 0.05) for i, text in enumerate(texts)]
    question = "When does the harbour in Aldwick open and what does it keep?"
    assert [h.chunk_id for h in relevant_hits(hits, question)] == [0, 2]


def test_strong_hits_are_capped_in_number_and_length(model, settings):
    from rag.generation.prompt import prompt_build

    settings.ANSWER_MAX_SOURCES, settings.ANSWER_SOURCE_TOKENS = 2, 40
    fruit = ["pears", "plums", "figs", "limes", "dates"]
    hits = [
        Hit(
            i,
            f"d{i}",
            f"Doc {i}",
            " ".join(f"Crate {j} holds {fruit[i]}." for j in range(40)),
            0.05,
        )
        for i in range(5)
    ]
    question = "Which crates hold pears, plums, figs, limes or dates?"  # each hit adds a word
    bare = prompt_build(model=model, question=question, hits=[], max_tokens=8)
    full = prompt_build(model=model, question=question, hits=hits, max_tokens=8)
    assert [s.n for s in full.sources] == [1, 2]
    assert len(full.tokens) - len(bare.tokens) <= 2 * (40 + 24)


def test_a_long_table_line_keeps_the_row_asked_about(model, settings):
    """A settings table flattened into one line has no sentence to centre on: the window
    starts just before the row that names what is asked, and keeps the value after it."""
    from rag.generation.prompt import prompt_build

    settings.ANSWER_SOURCE_TOKENS = 40
    table = " ".join(f"| `SETTING_{i}` | `{i * 7}` | what setting {i} bounds |" for i in range(60))
    hits = [Hit(1, "d", "Settings", table, 0.05)]
    prompt = prompt_build(
        model=model, question="What is the default of SETTING_57?", hits=hits, max_tokens=8
    )
    [source] = prompt.sources
    assert "`SETTING_57` | `399`" in source.text
    assert "SETTING_54" not in source.text and "SETTING_1`" not in source.text
