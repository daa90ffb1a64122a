"""Evaluation runs on a deliberately constructed corpus and set, where every relevant document
is certainly first in every mode or certainly absent, so recall@k, MRR and nDCG@10 are exact.
Also: per-archetype means, stored settings and progress, the change since the previous run,
strict JSONL import, the task's repeat safety, and isolation in every mode."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from django.conf import settings

from rag.models import Document, EvalQuestion, EvalRun, EvalSet
from rag.selectors import evalrun_get, evalrun_list, evalset_get, evalset_list
from rag.services import evaluation
from rag.services.documents import document_submit
from rag.services.evaluation import (
    EvalImportError,
    evalrun_queue,
    evalset_import,
    evaluation_compare,
    evaluation_run,
)
from rag.services.ingest import document_ingest
from rag.tasks import evaluate_set
from tenants.context import TenantNotBound, dangerously_unbound, tenant_context
from tests.helpers import MODES, python_last_line, wait_until

ZEBRAS = (
    "zebra-guide",
    "# Zebra care\n\nZebras at the zoo eat meadow hay and fresh grass twice a day. "
    "Keepers weigh the food of every zebra in the herd.",
)
VOLCANOES = (
    "volcano-notes",
    "# Volcanoes\n\nVolcanoes erupt when magma rises through cracks in the crust. "
    "Lava flows and clouds of ash follow the eruption.",
)
BREAD = (
    "bread-recipe",
    "# Sourdough\n\nMix flour, water and starter; knead the dough, let it rise overnight "
    "and bake it in a hot oven until the crust is brown.",
)
TAX = (
    "tax-guide",
    "# Tax returns\n\nThe filing deadline for a personal tax return is the fifteenth of April. "
    "Late filing adds a penalty to the amount owed.",
)
ONE_OVER_LOG2_3 = 1 / math.log2(3)
# Relevant: the zebra guide (found first) and an appendix never uploaded.
HALF_FOUND_NDCG = 1 / (1 + ONE_OVER_LOG2_3)


def ingest(tenant, document: tuple[str, str]) -> str:
    """Submit and ingest in this process (the worker's service), not enqueued: no worker races
    the test for the document."""
    external_id, text = document
    doc = document_submit(
        tenant=tenant,
        data=text.encode(),
        filename=f"{external_id}.md",
        external_id=external_id,
        enqueue=False,
    ).document
    assert document_ingest(tenant=tenant, document_id=doc.id) == "ready"
    return str(doc.id)


def set_lines(zebra_id: str) -> list[str]:
    """Four questions; their relevant documents are certainly first or certainly absent."""
    return [
        json.dumps(  # by document id
            {
                "question": "What do zebras eat at the zoo?",
                "relevant": [zebra_id],
                "archetype": "analyst",
            }
        ),
        json.dumps(
            {
                "question": "How do volcanoes erupt magma?",
                "relevant": ["volcano-notes"],
                "archetype": "manager",
            }
        ),
        "",  # blank lines are skipped
        json.dumps(  # its document is not uploaded yet: recall 0, RR 0
            {
                "question": "When is the filing deadline for a tax return?",
                "relevant": ["tax-guide"],
                "archetype": "manager",
            }
        ),
        json.dumps(  # no archetype: counts only overall
            {
                "question": "Which hay do zebras eat?",
                "relevant_external_ids": ["zebra-guide", "zebra-diet-appendix"],
            }
        ),
    ]


@pytest.fixture
def corpus(make_tenant):
    tenant = make_tenant("pool")
    ids = {
        name: ingest(tenant, doc)
        for name, doc in (("zebras", ZEBRAS), ("volcanoes", VOLCANOES), ("bread", BREAD))
    }
    eval_set = evalset_import(tenant=tenant, name="zoo", lines=set_lines(ids["zebras"]))
    return tenant, ids, eval_set


def _expected(values: dict, *, recall: float, mrr: float, ndcg: float, questions: int) -> None:
    assert values["recall@k"] == pytest.approx(recall)
    assert values["mrr"] == pytest.approx(mrr)
    assert values["ndcg@10"] == pytest.approx(ndcg)
    assert values["questions"] == questions


def test_a_run_reports_the_exact_metrics_of_a_constructed_set(corpus):
    tenant, ids, eval_set = corpus
    with tenant_context(tenant):
        stored = list(EvalQuestion.objects.filter(eval_set=eval_set))
    assert [q.relevant_document_ids for q in stored] == [[uuid.UUID(ids["zebras"])], [], [], []]
    assert [q.relevant_external_ids for q in stored] == [
        [],
        ["volcano-notes"],  # resolved when a run starts, not at import
        ["tax-guide"],  # kept although no document has it (yet)
        ["zebra-guide", "zebra-diet-appendix"],
    ]
    assert [q.archetype for q in stored] == ["analyst", "manager", "manager", ""]

    calls = []
    run = evaluation_run(
        tenant=tenant, eval_set=eval_set, k=10, progress=lambda d, t: calls.append((d, t))
    )

    assert run.status == "done", run.error
    assert calls == [(n, 12) for n in range(1, 13)]  # 4 questions x 3 modes
    assert set(run.results["modes"]) == {"vector", "keyword", "hybrid"}
    for mode, result in run.results["modes"].items():
        # (1 + 1 + 0 + 1/2) / 4 recall, (1 + 1 + 0 + 1) / 4 MRR.
        _expected(
            result["overall"],
            recall=0.625,
            mrr=0.75,
            ndcg=(2 + HALF_FOUND_NDCG) / 4,
            questions=4,
        )
        assert set(result["archetypes"]) == {"analyst", "manager"}, mode
        _expected(result["archetypes"]["analyst"], recall=1, mrr=1, ndcg=1, questions=1)
        _expected(result["archetypes"]["manager"], recall=0.5, mrr=0.5, ndcg=0.5, questions=2)

    stored_run = evalrun_get(tenant=tenant, run_id=run.pk)
    assert stored_run.status == "done" and stored_run.finished_at is not None
    assert stored_run.results == json.loads(json.dumps(run.results))
    assert (stored_run.progress_done, stored_run.progress_total) == (12, 12)


def test_a_run_stores_the_settings_it_used(corpus):
    tenant, _, eval_set = corpus
    run = evaluation_run(tenant=tenant, eval_set=eval_set, k=5)
    stored = evalrun_get(tenant=tenant, run_id=run.pk)
    assert stored.k == 5
    assert stored.settings == {
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
        "embedding_model_path": "model",
        "chunk_max_tokens": settings.CHUNK_MAX_TOKENS,
        "chunk_overlap_tokens": settings.CHUNK_OVERLAP_TOKENS,
        "hnsw_m": 16,
        "hnsw_ef_construction": 64,
        "hnsw_ef_search": settings.HNSW_EF_SEARCH,
        "keyword_candidates": settings.KEYWORD_CANDIDATES,
        "search_exact_below_chunks": settings.SEARCH_EXACT_BELOW_CHUNKS,
        "k": 5,
        "documents_ready": 3,
        "questions": 4,
    }


def test_the_change_since_the_previous_run_is_reported(corpus):
    tenant, _, eval_set = corpus
    first = evaluation_run(tenant=tenant, eval_set=eval_set)
    assert evaluation_compare(run=first) is None

    ingest(tenant, TAX)  # the missing document arrives: its question is now answered first
    second = evaluation_run(tenant=tenant, eval_set=eval_set)
    compare = evaluation_compare(run=second)

    assert compare["previous"]["id"] == first.pk
    for mode in ("vector", "keyword", "hybrid"):
        overall = compare["modes"][mode]["overall"]
        assert overall["recall@k"] == pytest.approx(0.25)  # 0.625 -> 0.875
        assert overall["mrr"] == pytest.approx(0.25)  # 0.75 -> 1.0
        assert overall["ndcg@10"] == pytest.approx(0.25)
        manager = compare["modes"][mode]["archetypes"]["manager"]
        assert manager == pytest.approx({"recall@k": 0.5, "mrr": 0.5, "ndcg@10": 0.5})
        analyst = compare["modes"][mode]["archetypes"]["analyst"]
        assert analyst == pytest.approx({"recall@k": 0.0, "mrr": 0.0, "ndcg@10": 0.0})
    assert second.results["modes"]["hybrid"]["overall"]["recall@k"] == pytest.approx(0.875)

    # A failed run is never "the previous run": the third is compared with the second.
    failed = _failed_run(tenant, eval_set)
    assert evaluation_compare(run=failed) is None
    third = evaluation_run(tenant=tenant, eval_set=eval_set)
    assert evaluation_compare(run=third)["previous"]["id"] == second.pk
    assert [r.pk for r in evalrun_list(tenant=tenant)] == [third.pk, failed.pk, second.pk, first.pk]
    assert [r.pk for r in evalrun_list(tenant=tenant, limit=2)] == [third.pk, failed.pk]


def _failed_run(tenant, eval_set):
    with pytest.MonkeyPatch.context() as patch:

        def broken(**kwargs):
            raise RuntimeError("index unavailable")

        patch.setattr("rag.services.search.chunk_search", broken)
        return evaluation_run(tenant=tenant, eval_set=eval_set)


def test_a_failing_run_is_stored_as_failed_with_its_reason(corpus):
    tenant, _, eval_set = corpus
    run = _failed_run(tenant, eval_set)
    stored = evalrun_get(tenant=tenant, run_id=run.pk)
    assert stored.status == "failed"
    assert stored.error == "RuntimeError: index unavailable"
    assert stored.finished_at is not None and stored.results == {}


def test_the_task_computes_a_queued_run_once(corpus, worker):
    tenant, _, eval_set = corpus
    run = evalrun_queue(tenant=tenant, eval_set=eval_set, k=3)
    assert (run.status, run.k, run.progress_total) == ("queued", 3, 12)

    # The real worker takes the queued run (the queue enqueued it on commit).
    wait_until(
        lambda: evalrun_get(tenant=tenant, run_id=run.pk).status == "done",
        timeout=120,
        message="the worker did not finish the run",
    )
    done = evalrun_get(tenant=tenant, run_id=run.pk)
    assert done.results["modes"]["keyword"]["overall"]["mrr"] == pytest.approx(0.75)
    assert (done.progress_done, done.progress_total) == (12, 12)

    # A repeat (a redelivered message) leaves the finished run alone.
    with tenant_context(tenant):
        EvalRun.objects.filter(pk=run.pk).update(results={"kept": True})
    assert evaluate_set(str(tenant.id), run.pk) == "done"
    assert evalrun_get(tenant=tenant, run_id=run.pk).results == {"kept": True}

    # A run left "running" by a dead worker is computed again, as the same run.
    with tenant_context(tenant):
        EvalRun.objects.filter(pk=run.pk).update(status="running", progress_done=7)
    assert evaluate_set(str(tenant.id), run.pk) == "done"
    again = evalrun_get(tenant=tenant, run_id=run.pk)
    assert (again.progress_done, again.progress_total) == (12, 12)
    assert again.results["modes"]["keyword"]["overall"]["mrr"] == pytest.approx(0.75)
    assert len(evalrun_list(tenant=tenant)) == 1

    # Gone rows: returns quietly.
    assert evaluate_set(str(tenant.id), 987654321) == "skipped"
    assert evaluate_set(str(uuid.uuid4()), run.pk) == "skipped"


def test_reimporting_a_set_replaces_its_questions(corpus):
    tenant, _, eval_set = corpus
    again = evalset_import(
        tenant=tenant,
        name="zoo",
        lines=['{"question": "Where do penguins live?", "relevant": ["penguin-guide"]}'],
        description="smaller",
    )
    assert again.pk == eval_set.pk
    [listed] = evalset_list(tenant=tenant)
    assert (listed.name, listed.question_count, listed.description) == ("zoo", 1, "smaller")


GOOD = '{"question": "Fine?", "relevant": ["a"]}'
MISSING_ID = str(uuid.UUID(int=1))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, "{not json"], "line 2: not valid JSON (Expecting property name"),
        ([GOOD, "", '["a list"]'], "line 3: expected a JSON object"),
        ([GOOD, '{"question": "", "relevant": ["a"]}'], 'line 2: "question" must be a non-empty'),
        (['{"question": 7, "relevant": ["a"]}'], 'line 1: "question" must be a non-empty string'),
        ([GOOD, '{"question": "q?"}'], "line 2: no relevant documents"),
        ([GOOD, '{"question": "q?", "relevant": []}'], "line 2: no relevant documents"),
        ([GOOD, '{"question": "q?", "relevant": "a"}'], 'line 2: "relevant" must be a list'),
        ([GOOD, '{"question": "q?", "relevant": [""]}'], 'line 2: "relevant" must be a list'),
        (
            [GOOD, '{"question": "q?", "relevant": ["a"], "archetype": 3}'],
            'line 2: "archetype" must be a string',
        ),
        (
            [GOOD, '{"question": "q?", "relevant": ["a"], "answer": "x"}'],
            "line 2: unknown key 'answer'",
        ),
        (
            [GOOD, '{"question": "q?", "relevant_document_ids": ["nope"]}'],
            "line 2: \"relevant_document_ids\": 'nope' is not a document id",
        ),
        (
            [GOOD, "", '{"question": "q?", "relevant_document_ids": ["' + MISSING_ID + '"]}'],
            f"line 3: document {MISSING_ID} is not one of the tenant's",
        ),
        ([GOOD.encode(), b'{"question": "caf\xe9?", "relevant": ["a"]}'], "line 2: not UTF-8"),
        (["", "  "], "the file has no questions"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_stored(make_tenant, lines, message):
    tenant = make_tenant("pool")
    with pytest.raises(EvalImportError) as caught:
        evalset_import(tenant=tenant, name="broken", lines=lines)
    assert str(caught.value).startswith(message), str(caught.value)
    assert evalset_list(tenant=tenant) == []
    with tenant_context(tenant):
        assert EvalQuestion.objects.count() == 0


def test_a_failed_reimport_leaves_the_existing_set_as_it_was(corpus):
    tenant, _, eval_set = corpus
    with tenant_context(tenant):
        before = list(EvalQuestion.objects.filter(eval_set=eval_set).values_list("pk", flat=True))
    with pytest.raises(EvalImportError, match="line 2"):
        evalset_import(
            tenant=tenant,
            name="zoo",
            lines=['{"question": "q?", "relevant": ["a"]}', '{"question": "q?"}'],
        )
    [listed] = evalset_list(tenant=tenant)
    assert listed.question_count == 4
    with tenant_context(tenant):
        after = list(EvalQuestion.objects.filter(eval_set=eval_set).values_list("pk", flat=True))
    assert after == before


def test_a_set_needs_a_name(make_tenant):
    tenant = make_tenant("pool")
    with pytest.raises(EvalImportError, match="needs a name"):
        evalset_import(tenant=tenant, name="  ", lines=['{"question": "q?", "relevant": ["a"]}'])


@pytest.mark.parametrize("mode", MODES)
def test_another_tenant_sees_none_of_the_sets_and_runs(make_tenant, mode):
    owner, other = make_tenant(mode), make_tenant(mode)
    with tenant_context(owner):
        document = Document.objects.create(title="Secret", content_hash="e" * 64)
    eval_set = evalset_import(
        tenant=owner,
        name="private",
        lines=[json.dumps({"question": "secret?", "relevant": [str(document.id)]})],
    )
    with tenant_context(owner):
        run = EvalRun.objects.create(eval_set=eval_set, status="done", results={"modes": {}})

    assert evalset_list(tenant=other) == []
    assert evalrun_list(tenant=other) == []
    assert evalset_get(tenant=other, set_id=eval_set.pk) is None
    assert evalset_get(tenant=other, name="private") is None
    assert evalrun_get(tenant=other, run_id=run.pk) is None
    with tenant_context(other):
        assert EvalSet.objects.count() == 0
        assert EvalQuestion.objects.count() == 0
        assert EvalRun.objects.count() == 0
    # Unbound: a bug that raises; through the escape hatch the pool tables show nothing (RLS).
    with pytest.raises(TenantNotBound):
        EvalSet.objects.count()
    with dangerously_unbound():
        assert EvalSet.objects.count() == EvalQuestion.objects.count() == 0
        assert EvalRun.objects.count() == 0

    # The other tenant's id of a document is not "its" document: strictly refused as an id,
    # and in "relevant" it is taken for an external id of the other tenant's own.
    with pytest.raises(EvalImportError, match="not one of the tenant's"):
        evalset_import(
            tenant=other,
            name="private",
            lines=[json.dumps({"question": "q?", "relevant_document_ids": [str(document.id)]})],
        )
    mine = evalset_import(
        tenant=other,
        name="private",  # the same name is free in another tenant
        lines=[json.dumps({"question": "q?", "relevant": [str(document.id)]})],
    )
    with tenant_context(other):
        [question] = EvalQuestion.objects.filter(eval_set=mine)
    assert question.relevant_document_ids == [] and question.relevant_external_ids == [
        str(document.id)
    ]
    assert [s.question_count for s in evalset_list(tenant=owner)] == [1]


def test_k_is_bounded(corpus):
    tenant, _, eval_set = corpus
    for k in (0, evaluation.MAX_K + 1):
        with pytest.raises(ValueError, match="k must be between"):
            evaluation_run(tenant=tenant, eval_set=eval_set, k=k)


@pytest.mark.parametrize("mode", MODES)
def test_the_evaluation_tables_force_row_level_security_in_every_placement(make_tenant, mode):
    from django.db import connections

    from tenants.context import data_alias

    tenant = make_tenant(mode)
    tables = ["rag_evalquestion", "rag_evalrun", "rag_evalset"]
    with tenant_context(tenant), connections[data_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, n.nspname, c.relrowsecurity, c.relforcerowsecurity, "
            "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
            "FROM unnest(%s::text[]) AS t(name) "
            "JOIN pg_class c ON c.oid = to_regclass(t.name) "
            "JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1",
            [tables],
        )
        rows = cursor.fetchall()
    schema = tenant.schema_name if mode == "bridge" else "public"
    assert rows == [(table, schema, True, True, 1) for table in tables]


def test_the_evaluation_modules_do_not_import_the_ml_libraries(pg):
    """The web process imports the console view (and through it the service) to queue runs."""

    heavy = ("torch", "sentence_transformers", "transformers", "llama_cpp")
    code = (
        "import django, sys; django.setup();"
        "import rag.tasks, rag.services.evaluation, console.views.evaluation;"
        "import rag.management.commands.evaluate;"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    assert python_last_line(code) == "[]"
