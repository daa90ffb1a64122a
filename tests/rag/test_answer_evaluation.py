"""Answer evaluation: expected facts and unanswerable questions on import (bad ones refused,
nothing stored), the metrics on hand-built answer results (fact matching with alternatives and
word edges, refusals, citation precision, groundedness, TTFT, tokens/s), the shipped example
set (its facts are in the shipped documents), a real answer run through the command (real
retrieval and generation) stored with its settings, and the change since the previous run."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rag.models import EvalQuestion, EvalRun, EvalRunKind
from rag.selectors import evalrun_list
from rag.services.evaluation import (
    EvalImportError,
    answer_aggregate,
    answer_evaluation_compare,
    answer_score,
    evalset_import,
    evaluation_run,
    fact_present,
    facts_present,
    refused,
)
from rag.services.evaluation.answer_metrics import normalise
from rag.services.evaluation.example import EXAMPLE_FILE, example_documents
from rag.services.evaluation.importing import _parse
from rag.services.grounding import DECLINE_ANSWER
from tenants.context import tenant_context
from tests.rag.test_evaluation import ZEBRAS, ingest

# --- metrics on hand-built results ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "fact", "present"),
    [
        ("Set `DATABASE_URL`  and restart.", "database_url", True),
        ("Set OWNER_DATABASE_URL.", "DATABASE_URL", False),  # another setting
        ("It listens on port 6432.", "6432", True),
        ("It listens on port 64321.", "6432", False),
        ("The timeout is 2\n s.", "2 s", True),
        ("Run make   check-isolation.", "make check-isolation", True),
        ("Use **--json** for JSON.", "--json", True),
        ("The lock waits 2 seconds.", ["2 s", "2 seconds"], True),
        ("The lock waits a while.", ["2 s", "2 seconds"], False),
    ],
)
def test_a_fact_matches_case_and_spacing_insensitively_on_word_edges(answer, fact, present):
    assert fact_present(answer, fact) is present


def test_every_fact_must_be_stated():
    assert facts_present("Port 6432 in transaction mode.", ["6432", ["transaction", "txn"]])
    assert not facts_present("Port 6432.", ["6432", ["transaction", "txn"]])
    assert not facts_present("Anything.", [])


@pytest.mark.parametrize(
    ("result", "declined"),
    [
        ({"answer": DECLINE_ANSWER, "finish_reason": "declined"}, True),
        ({"answer": DECLINE_ANSWER.upper(), "finish_reason": "stop"}, True),
        ({"answer": "I don\u2019t know that.", "finish_reason": "stop"}, True),
        ({"answer": "The sources do not mention a licence price.", "finish_reason": "stop"}, True),
        (
            {"answer": "The United States won the 1998 world cup [1].", "finish_reason": "stop"},
            False,
        ),
    ],
)
def test_refusals_are_recognised(result, declined):
    assert refused(result, decline_texts=[DECLINE_ANSWER]) is declined


def _result(answer, sentences, *, grounded=1.0, finish="stop", ttft=500.0, total=1500.0, n=21):
    return {
        "answer": answer,
        "finish_reason": finish,
        "grounded": grounded,
        "sentences": sentences,
        "usage": {"completion_tokens": n},
        "timings": {"ttft_ms": ttft, "total_ms": total},
    }


def _sentence(cited, supported_by, kept=True):
    return {"text": "...", "cited": cited, "supported_by": supported_by, "kept": kept}


def test_the_means_of_hand_built_answers():
    right = _result(  # 3 citations, 2 supported; a dropped sentence does not count
        "Use port 6432 [1][2]. It pools transactions [3].",
        [_sentence([1, 2], [1]), _sentence([3], [3]), _sentence([4], [], kept=False)],
        grounded=1.0,
        ttft=400.0,
        total=1400.0,  # 20 tokens after the first in 1 s
    )
    wrong = _result(
        "Use port 5432 [1].", [_sentence([1], [])], grounded=0.5, ttft=600.0, total=2600.0
    )
    declined = _result(DECLINE_ANSWER, [], finish="declined", ttft=20.0, total=20.0, n=0)
    invented = _result(
        "France won [1].", [_sentence([1], [])], grounded=0.0, ttft=800.0, total=1800.0
    )
    scores = [
        answer_score(result=right, expected_facts=["6432"], unanswerable=False, archetype="ops"),
        answer_score(result=wrong, expected_facts=["6432"], unanswerable=False, archetype="ops"),
        answer_score(result=declined, expected_facts=[], unanswerable=True, archetype="dev"),
        answer_score(result=invented, expected_facts=[], unanswerable=True),
    ]
    means = answer_aggregate(scores)
    overall = means["overall"]
    assert overall["accuracy"] == 0.5 and overall["answerable"] == 2
    assert overall["refusals"] == 0.5 and overall["unanswerable"] == 2
    assert overall["false_refusals"] == 0.0
    assert overall["citation_precision"] == 0.4  # 2 of 5 kept (sentence, source) pairs
    assert overall["groundedness"] == 0.5  # (1 + 0.5 + 0) / 3: the declined answer claims nothing
    assert overall["ttft_p50_ms"] == 600.0  # of the three generated answers
    assert overall["tokens_per_s"] == 15.0  # 60 tokens after the first in 4 s
    assert set(means["archetypes"]) == {"ops", "dev"}
    assert means["archetypes"]["ops"]["refusals"] is None  # nothing unanswerable there
    assert means["archetypes"]["dev"]["refusals"] == 1.0
    assert means["archetypes"]["dev"]["groundedness"] is None


# --- the shipped example set ------------------------------------------------------------------


def test_the_example_sets_facts_are_in_the_shipped_documents():
    drafts = _parse(EXAMPLE_FILE.read_bytes().splitlines())
    documents = {name: normalise(path.read_text()) for name, path in example_documents().items()}
    answerable = [d for d in drafts if not d.unanswerable]
    assert len(answerable) >= 20 and sum(d.unanswerable for d in drafts) >= 5
    for draft in answerable:
        assert draft.expected_facts and draft.archetype, draft.question
        for fact in draft.expected_facts:
            alternatives = fact if isinstance(fact, list) else [fact]
            assert any(
                fact_present(documents[name], alternative)
                for name in draft.candidates
                for alternative in alternatives
            ), (draft.question, fact)


# --- import -----------------------------------------------------------------------------------


def _line(**item) -> str:
    return json.dumps({"question": "Which port?", **item})


def test_facts_and_unanswerable_are_imported(make_tenant):
    tenant = make_tenant("pool")
    lines = [
        _line(expected_facts=["  6432 ", ["transaction", "txn"]], archetype="ops"),
        _line(unanswerable=True),
        _line(relevant=["guide"]),
    ]
    eval_set = evalset_import(tenant=tenant, name="answers", lines=lines)
    with tenant_context(tenant):
        questions = list(EvalQuestion.objects.filter(eval_set=eval_set))
    assert [q.expected_facts for q in questions] == [["6432", ["transaction", "txn"]], [], []]
    assert [q.unanswerable for q in questions] == [False, True, False]
    assert questions[2].relevant_external_ids == ["guide"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (_line(expected_facts="6432"), '"expected_facts" must be a list'),
        (_line(expected_facts=["6432", []]), '"expected_facts" must be a list'),
        (_line(expected_facts=[" "]), '"expected_facts" must be a list'),
        (_line(expected_facts=[6432]), '"expected_facts" must be a list'),
        (_line(expected_facts=["x" * 201]), "at most 200 characters"),
        (_line(unanswerable="yes"), '"unanswerable" must be true or false'),
        (_line(unanswerable=True, expected_facts=["6432"]), "an unanswerable question has no"),
        (_line(unanswerable=True, relevant=["guide"]), "an unanswerable question has no"),
        (_line(), 'or, for answer evaluation only, "expected_facts"'),
    ],
)
def test_bad_facts_are_refused_and_nothing_is_stored(make_tenant, bad, reason):
    tenant = make_tenant("pool")
    with pytest.raises(EvalImportError) as caught:
        evalset_import(tenant=tenant, name="answers", lines=[_line(unanswerable=True), bad])
    assert caught.value.line == 2 and reason in caught.value.reason
    with tenant_context(tenant):
        assert not EvalQuestion.objects.exists()


def test_a_retrieval_run_leaves_out_questions_for_answers_only(make_tenant):
    tenant = make_tenant("pool")
    ingest(tenant, ZEBRAS)
    lines = [
        _line(question="What do zebras eat?", relevant=["zebra-guide"]),
        _line(question="Who won the 1998 world cup?", unanswerable=True),
        _line(question="What do zebras eat at the zoo?", expected_facts=["hay"]),
    ]
    eval_set = evalset_import(tenant=tenant, name="mixed", lines=lines)
    run = evaluation_run(tenant=tenant, eval_set=eval_set, k=5)
    assert run.settings["questions"] == 1 and run.kind == EvalRunKind.RETRIEVAL
    assert run.results["modes"]["hybrid"]["overall"]["recall@k"] == 1.0


# --- runs -------------------------------------------------------------------------------------


def _evaluate(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_real_answer_run_is_stored_and_printed(make_tenant, tmp_path):
    tenant = make_tenant("pool")
    ingest(tenant, ZEBRAS)
    path = tmp_path / "zoo-answers.jsonl"
    path.write_text(
        "\n".join(
            [
                _line(
                    question="What do zebras eat at the zoo?",
                    expected_facts=[["hay", "grass"]],
                    archetype="keeper",
                ),
                _line(question="Who won the 1998 football world cup?", unanswerable=True),
            ]
        )
        + "\n"
    )
    out, err = _evaluate(tenant.slug, "--import", str(path), "--answers", "--max-tokens", "24")

    (run,) = evalrun_list(tenant=tenant)
    assert run.kind == EvalRunKind.ANSWERS and run.status == "done" and run.k == 5
    assert "6/6" in err  # the progress bar: 2 questions x 3 policies
    s = run.settings
    assert [m["name"] for m in s["models"]] == [run.results["details"][0]["model"]]
    assert s["policies"] == ["annotate", "strict", "extractive"] and s["max_tokens"] == 24
    assert s["answerable"] == 1 and s["unanswerable"] == 1 and "grounding_support_threshold" in s
    model = s["models"][0]["name"]
    strict = run.results["answers"][model]["strict"]
    assert set(strict["archetypes"]) == {"keeper"}
    assert strict["overall"]["answerable"] == 1 and strict["overall"]["unanswerable"] == 1
    assert len(run.results["details"]) == 6
    rows = {
        tuple(line.split()[:3]): line.split()[3:]
        for line in out.splitlines()
        if line.startswith(model)
    }
    assert set(rows) == {
        (model, policy, group)
        for policy in ("annotate", "strict", "extractive")
        for group in ("overall", "keeper")
    }
    overall = strict["overall"]
    assert rows[(model, "strict", "overall")][:3] == [
        "2",
        f"{overall['accuracy']:.3f}",
        f"{overall['refusals']:.3f}",
    ]
    assert "accuracy" in out and "refusals" in out and "TTFT p50 ms" in out
    assert "No previous answer run of this set to compare with." in out


def test_the_change_since_the_previous_answer_run(make_tenant):
    tenant = make_tenant("pool")
    eval_set = evalset_import(tenant=tenant, name="zoo", lines=[_line(unanswerable=True)])

    def results(refusals, ttft):
        means = {"accuracy": None, "refusals": refusals, "groundedness": 1.0, "questions": 1}
        means |= {"citation_precision": None, "ttft_p50_ms": ttft, "tokens_per_s": None}
        return {"answers": {"m": {"strict": {"overall": means, "archetypes": {}}}}}

    with tenant_context(tenant):
        first = EvalRun.objects.create(
            eval_set=eval_set, kind="answers", status="done", results=results(0.0, 900.0)
        )
        EvalRun.objects.create(eval_set=eval_set, status="done", results={"modes": {}})
        second = EvalRun.objects.create(
            eval_set=eval_set, kind="answers", status="done", results=results(1.0, 600.0)
        )
    compare = answer_evaluation_compare(run=second, tenant=tenant)
    assert compare["previous"]["id"] == first.pk  # the retrieval run between is not an answer run
    delta = compare["answers"]["m"]["strict"]["overall"]
    assert delta["refusals"] == 1.0 and delta["ttft_p50_ms"] == -300.0
    assert delta["accuracy"] is None and delta["groundedness"] == 0.0


def test_the_command_refuses_unknown_models_and_answer_options_without_answers(make_tenant):
    tenant = make_tenant("pool")
    evalset_import(tenant=tenant, name="zoo", lines=[_line(unanswerable=True)])
    with pytest.raises(CommandError, match="No model named 'nope'"):
        _evaluate(tenant.slug, "--answers", "--model", "nope")
    with pytest.raises(CommandError, match="go with --answers"):
        _evaluate(tenant.slug, "--policy", "strict")
    assert evalrun_list(tenant=tenant) == []
