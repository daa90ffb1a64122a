"""`manage.py evaluate`: import a JSONL set, evaluate it in-process, print the metrics table
with the change since the previous run; clear errors for bad input."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rag.selectors import evalrun_list, evalset_list
from rag.services.evaluation import evalset_import
from tests.rag.test_evaluation import BREAD, TAX, VOLCANOES, ZEBRAS, ingest, set_lines


def evaluate(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def rows(output: str) -> dict[tuple[str, str], list[str]]:
    """(mode, group) -> the row's remaining cells, from the printed table."""
    table = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in ("vector", "keyword", "hybrid"):
            table[(cells[0], cells[1])] = cells[2:]
    return table


@pytest.fixture
def tenant_with_corpus(make_tenant):
    tenant = make_tenant("pool")
    ids = {
        name: ingest(tenant, doc)
        for name, doc in (("zebras", ZEBRAS), ("volcanoes", VOLCANOES), ("bread", BREAD))
    }
    return tenant, ids


def test_import_and_evaluate_prints_the_table_then_the_change(tenant_with_corpus, tmp_path):
    tenant, ids = tenant_with_corpus
    path = tmp_path / "zoo-questions.jsonl"
    path.write_text("\n".join(set_lines(ids["zebras"])) + "\n")

    out, err = evaluate(tenant.slug, "--import", str(path))

    assert "Imported set 'zoo-questions': 4 questions." in out
    assert "12/12" in err  # the progress bar, on stderr
    assert "recall@10" in out and "MRR" in out and "nDCG@10" in out
    table = rows(out)
    assert set(table) == {
        (mode, group)
        for mode in ("vector", "keyword", "hybrid")
        for group in ("overall", "analyst", "manager")
    }
    for mode in ("vector", "keyword", "hybrid"):
        assert table[(mode, "overall")] == ["4", "0.625", "0.750", "0.653"]
        assert table[(mode, "analyst")] == ["1", "1.000", "1.000", "1.000"]
        assert table[(mode, "manager")] == ["2", "0.500", "0.500", "0.500"]
    assert "No previous run of this set to compare with." in out
    assert "sentence-transformers/all-MiniLM-L6-v2" in out and "m=16" in out

    ingest(tenant, TAX)  # the missing document arrives
    again, _ = evaluate(tenant.slug, "--set", "zoo-questions", "--k", "5")

    table = rows(again)
    for mode in ("vector", "keyword", "hybrid"):
        assert table[(mode, "overall")] == [
            "4", "0.875", "(+0.250)", "1.000", "(+0.250)", "0.903", "(+0.250)"
        ]  # fmt: skip
        assert table[(mode, "manager")] == [
            "2", "1.000", "(+0.500)", "1.000", "(+0.500)", "1.000", "(+0.500)"
        ]  # fmt: skip
        assert table[(mode, "analyst")][1:3] == ["1.000", "(±0.000)"]
    first, second = sorted(evalrun_list(tenant=tenant), key=lambda r: (r.created_at, r.pk))
    assert f"Changes are against run {first.pk} (its k was 10)." in again
    assert "recall@5" in again and second.k == 5


def test_with_one_set_it_needs_no_name_and_with_several_it_lists_them(tenant_with_corpus):
    tenant, ids = tenant_with_corpus
    evalset_import(tenant=tenant, name="first", lines=set_lines(ids["zebras"])[:1])
    out, _ = evaluate(tenant.slug)
    assert rows(out)[("hybrid", "overall")] == ["1", "1.000", "1.000", "1.000"]

    evalset_import(tenant=tenant, name="second", lines=set_lines(ids["zebras"])[:2])
    with pytest.raises(CommandError, match="several sets; choose one with --set: first, second"):
        evaluate(tenant.slug)


def test_errors_name_the_problem(make_tenant, tmp_path):
    tenant = make_tenant("pool")
    with pytest.raises(CommandError, match="No tenant with slug 'nobody'"):
        evaluate("nobody")
    with pytest.raises(CommandError, match="no evaluation set; import one"):
        evaluate(tenant.slug)
    with pytest.raises(CommandError, match="no evaluation set 'zoo'"):
        evaluate(tenant.slug, "--set", "zoo")
    with pytest.raises(CommandError, match="--k must be between 1 and 50"):
        evaluate(tenant.slug, "--k", "0")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "relevant": ["a"]}\n{"question": "no relevant"}\n')
    with pytest.raises(CommandError, match=r"bad.jsonl: line 2: no relevant documents.*Nothing"):
        evaluate(tenant.slug, "--import", str(bad))
    assert evalset_list(tenant=tenant) == []
    with pytest.raises(CommandError, match="Cannot read"):
        evaluate(tenant.slug, "--import", str(tmp_path / "missing.jsonl"))
