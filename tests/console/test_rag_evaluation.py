"""Console evaluation: staff only, JSONL import through the form (bad lines named, nothing
stored), a run started by the button and computed by the real worker with live progress,
metrics and deltas, another tenant's run or set as a 404 in every mode, CSRF."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from rag.models import EvalRun
from rag.selectors import evalrun_list, evalset_list
from rag.services.evaluation import evalset_import
from tenants.context import tenant_context
from tests.console.conftest import form_token
from tests.helpers import MODES, wait_until
from tests.rag.test_evaluation import BREAD, VOLCANOES, ZEBRAS, ingest, set_lines

HX = {"HTTP_HX_REQUEST": "true"}
LINES = [json.dumps({"question": "What do zebras eat?", "relevant": ["zebra-guide"]})]


def _jsonl(lines: list[str], name: str = "zoo.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(), "application/jsonl")


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _set_with_run(tenant, *, status="done", **fields):
    eval_set = evalset_import(tenant=tenant, name="zoo", lines=LINES)
    with tenant_context(tenant):
        run = EvalRun.objects.create(eval_set=eval_set, status=status, **fields)
    return eval_set, run


def test_staff_see_the_tab_and_empty_states(staff_client, make_tenant):
    tenant = make_tenant("pool")
    response = staff_client.get(reverse("console:tenant-evaluation", args=[tenant.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'aria-current="page">Evaluation</a>' in html
    assert "No evaluation sets yet." in html and "No runs yet." in html
    assert '<label for="id_file">JSONL file' in html and '<label for="id_name">Set name' in html


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_anonymous_and_non_staff_users_are_sent_to_login(who, make_tenant, user_client):
    client = Client() if who == "anonymous" else user_client
    tenant = make_tenant("pool")
    eval_set, run = _set_with_run(tenant)
    slug = tenant.slug
    for method, url in [
        ("get", reverse("console:tenant-evaluation", args=[slug])),
        ("get", reverse("console:tenant-evaluation-run-row", args=[slug, run.pk])),
        ("post", reverse("console:tenant-evaluation-import", args=[slug])),
        ("post", reverse("console:tenant-evaluation-run", args=[slug, eval_set.pk])),
    ]:
        response = getattr(client, method)(url, {"k": "5"})
        assert response.status_code == 302, url
        assert response["Location"].startswith("/console/login/?next="), url
    assert len(evalrun_list(tenant=tenant)) == 1  # the run request did nothing


def test_actions_refuse_get(staff_client, make_tenant):
    tenant = make_tenant("pool")
    eval_set, _ = _set_with_run(tenant)
    for url in (
        reverse("console:tenant-evaluation-import", args=[tenant.slug]),
        reverse("console:tenant-evaluation-run", args=[tenant.slug, eval_set.pk]),
    ):
        assert staff_client.get(url).status_code == 405


def test_importing_through_the_form(staff_client, make_tenant):
    tenant = make_tenant("pool")
    url = reverse("console:tenant-evaluation-import", args=[tenant.slug])
    response = staff_client.post(url, {"file": _jsonl(LINES * 2, "zoo-set.jsonl")}, follow=True)
    assert _messages(response) == ["Imported set “zoo-set” with 2 questions."]
    html = response.content.decode()
    assert 'id="set-' in html and "zoo-set" in html and "Run evaluation" in html
    [imported] = evalset_list(tenant=tenant)
    assert (imported.name, imported.question_count) == ("zoo-set", 2)

    # A bad line: the form says which and why, and nothing changes.
    bad = [*LINES, '{"question": "no relevant"}']
    response = staff_client.post(url, {"file": _jsonl(bad), "name": "zoo-set"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Line 2: no relevant documents" in html and "Nothing was imported." in html
    assert [s.question_count for s in evalset_list(tenant=tenant)] == [2]

    # htmx: the panel comes back with the outcome.
    response = staff_client.post(url, {"file": _jsonl(LINES), "name": "named"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'id="evaluation-panel"' in html and "Imported set “named” with 1 questions." in html
    assert [s.name for s in evalset_list(tenant=tenant)] == ["named", "zoo-set"]


def test_a_run_started_by_the_button_is_computed_by_the_worker(staff_client, make_tenant, worker):
    tenant = make_tenant("pool")
    ids = {
        name: ingest(tenant, doc)
        for name, doc in (("zebras", ZEBRAS), ("volcanoes", VOLCANOES), ("bread", BREAD))
    }
    eval_set = evalset_import(tenant=tenant, name="zoo", lines=set_lines(ids["zebras"]))

    url = reverse("console:tenant-evaluation-run", args=[tenant.slug, eval_set.pk])
    response = staff_client.post(url, {"k": "10"}, follow=True)
    [run] = evalrun_list(tenant=tenant)
    assert _messages(response) == [f"Run {run.pk} of “zoo” queued."]
    html = response.content.decode()
    assert f'id="evalrun-{run.pk}"' in html
    # Until the worker is done the row shows "searches done/total" (a fast worker may already
    # be done by the first look; the running state is checked on its own below).

    row_url = reverse("console:tenant-evaluation-run-row", args=[tenant.slug, run.pk])
    seen_progress = set()

    def finished_row() -> str | None:
        html = staff_client.get(row_url, **HX).content.decode()
        if 'data-status="done"' in html or 'data-status="failed"' in html:
            return html
        assert 'hx-trigger="every 1s"' in html  # still polling while queued or running
        seen_progress.add(html.split('class="progress-count">')[1].split("<")[0])
        return None

    html = wait_until(finished_row, timeout=180, interval=0.3, message="the run is not done")
    assert 'data-status="done"' in html, html
    assert "hx-trigger" not in html  # polling stops
    assert all(p.endswith("/12") for p in seen_progress), seen_progress
    done = evalrun_list(tenant=tenant)[0]
    assert (done.progress_done, done.progress_total) == (12, 12)
    assert "0.625" in html and "0.750" in html  # recall@10 and MRR overall
    assert ">analyst<" in html and ">manager<" in html

    # A second run shows its change from the first (no change: ±0.000, neither green nor red).
    staff_client.post(url, {"k": "10"})
    second = evalrun_list(tenant=tenant)[0]
    wait_until(
        lambda: evalrun_list(tenant=tenant)[0].status in ("done", "failed"),
        timeout=180,
        interval=0.3,
        message="the second run is not done",
    )
    page = staff_client.get(reverse("console:tenant-evaluation", args=[tenant.slug]))
    html = page.content.decode()
    row = html.split(f'id="evalrun-{second.pk}"')[1].split("</tbody>")[0]
    assert f"vs run #{run.pk}" in row
    assert 'class="delta same"' in row and "±0.000" in row
    assert 'class="delta up"' not in row and 'class="delta down"' not in row


def test_a_running_row_polls_and_shows_progress_and_deltas_are_coloured(staff_client, make_tenant):
    tenant = make_tenant("pool")
    eval_set, running = _set_with_run(tenant, status="running", progress_done=5, progress_total=12)
    html = staff_client.get(
        reverse("console:tenant-evaluation-run-row", args=[tenant.slug, running.pk]), **HX
    ).content.decode()
    assert 'hx-trigger="every 1s"' in html and 'data-status="running"' in html
    assert '<progress max="12" value="5"' in html and "5/12" in html

    def results(recall):
        values = {"recall@k": recall, "mrr": 0.5, "ndcg@10": 0.5, "questions": 2}
        return {
            "modes": {
                m: {"overall": values, "archetypes": {}} for m in ("vector", "keyword", "hybrid")
            }
        }

    with tenant_context(tenant):
        EvalRun.objects.create(eval_set=eval_set, status="done", results=results(0.5))
        better = EvalRun.objects.create(eval_set=eval_set, status="done", results=results(0.75))
        worse = EvalRun.objects.create(eval_set=eval_set, status="done", results=results(0.7))
    page = staff_client.get(reverse("console:tenant-evaluation", args=[tenant.slug]))
    html = page.content.decode()
    better_row = html.split(f'id="evalrun-{better.pk}"')[1].split("</tbody>")[0]
    worse_row = html.split(f'id="evalrun-{worse.pk}"')[1].split("</tbody>")[0]
    assert '<span class="delta up" aria-label="change +0.250">+0.250</span>' in better_row
    assert '<span class="delta down" aria-label="change -0.050">-0.050</span>' in worse_row
    assert "first run" in html  # the oldest has nothing to compare with


def test_answer_runs_show_their_metrics_per_model_and_policy_with_changes(
    staff_client, make_tenant
):
    tenant = make_tenant("pool")
    eval_set, _ = _set_with_run(tenant)

    def results(accuracy, ttft):
        means = {"accuracy": accuracy, "refusals": None, "groundedness": 0.9, "questions": 3}
        means |= {"citation_precision": 0.75, "ttft_p50_ms": ttft, "tokens_per_s": 29.5}
        by_policy = {
            "strict": {"overall": means, "archetypes": {"operator": {**means, "questions": 1}}}
        }
        return {"answers": {"SmolLM2": by_policy}}

    with tenant_context(tenant):
        first = EvalRun.objects.create(
            eval_set=eval_set, kind="answers", status="done", k=5, results=results(0.5, 900.0)
        )
        second = EvalRun.objects.create(
            eval_set=eval_set, kind="answers", status="done", k=5, results=results(0.8, 600.0)
        )
    html = staff_client.get(reverse("console:tenant-evaluation", args=[tenant.slug])).content
    html = html.decode()
    assert 'id="answer-runs-heading">Answer runs' in html and "Citation precision" in html
    row = html.split(f'id="evalrun-{second.pk}"')[1].split("</tbody>")[0]
    assert 'data-kind="answers"' in row and f"vs run #{first.pk}" in row
    assert 'data-model="SmolLM2" data-policy="strict" data-group="overall"' in row
    assert 'data-group="operator"' in row and ">operator<" in row
    assert '0.800<span class="delta up" aria-label="change +0.300">+0.300</span>' in row
    assert '600.0<span class="delta up" aria-label="change -300.0">-300.0</span>' in row  # faster
    assert "0.900" in row and "29.5" in row and "—" in row  # no unanswerable question: no rate
    # The retrieval table does not show answer runs.
    retrieval = html.split('id="runs-heading"')[1].split('id="answer-runs-heading"')[0]
    assert f'id="evalrun-{second.pk}"' not in retrieval


def test_the_answers_button_queues_an_answer_run(staff_client, make_tenant):
    tenant = make_tenant("pool")
    eval_set = evalset_import(
        tenant=tenant,
        name="zoo",
        lines=[*LINES, json.dumps({"question": "Who won in 1998?", "unanswerable": True})],
    )
    url = reverse("console:tenant-evaluation-run", args=[tenant.slug, eval_set.pk])
    html = staff_client.get(reverse("console:tenant-evaluation", args=[tenant.slug])).content
    assert f'id="run-answers-{eval_set.pk}"' in html.decode()
    response = staff_client.post(url, {"k": "5", "kind": "answers"}, follow=True)
    [run] = evalrun_list(tenant=tenant)
    assert _messages(response) == [f"Answer run {run.pk} of “zoo” queued."]
    assert (run.kind, run.k, run.progress_total) == ("answers", 5, 3)
    row = response.content.decode().split(f'id="evalrun-{run.pk}"')[1].split("</tbody>")[0]
    assert 'data-kind="answers"' in row
    # Queued or under way it shows its progress; the session's worker may already have run it
    # (a tenant with no documents declines each question at once) before the page rendered.
    assert "/3</span> answers" in row or 'data-status="done"' in row, row


def test_a_bad_k_queues_nothing(staff_client, make_tenant):
    tenant = make_tenant("pool")
    eval_set = evalset_import(tenant=tenant, name="zoo", lines=LINES)
    url = reverse("console:tenant-evaluation-run", args=[tenant.slug, eval_set.pk])
    response = staff_client.post(url, {"k": "51"}, follow=True)
    assert _messages(response) == ["k: Ensure this value is less than or equal to 50."]
    assert evalrun_list(tenant=tenant) == []


@pytest.mark.parametrize("mode", MODES)
def test_another_tenants_run_or_set_is_a_404(staff_client, make_tenant, mode):
    owner, other = make_tenant(mode), make_tenant(mode)
    eval_set, run = _set_with_run(owner)
    row = reverse("console:tenant-evaluation-run-row", args=[other.slug, run.pk])
    assert staff_client.get(row).status_code == 404
    start = reverse("console:tenant-evaluation-run", args=[other.slug, eval_set.pk])
    assert staff_client.post(start, {"k": "5"}).status_code == 404
    assert evalrun_list(tenant=other) == [] and len(evalrun_list(tenant=owner)) == 1
    page = staff_client.get(reverse("console:tenant-evaluation", args=[other.slug]))
    assert "No evaluation sets yet." in page.content.decode()
    # The owner's own URL works.
    own = reverse("console:tenant-evaluation-run-row", args=[owner.slug, run.pk])
    assert staff_client.get(own).status_code == 200


def test_actions_need_the_csrf_token(csrf_staff_client, make_tenant):
    tenant = make_tenant("pool")
    eval_set = evalset_import(tenant=tenant, name="zoo", lines=LINES)
    import_url = reverse("console:tenant-evaluation-import", args=[tenant.slug])
    run_url = reverse("console:tenant-evaluation-run", args=[tenant.slug, eval_set.pk])
    assert csrf_staff_client.post(import_url, {"file": _jsonl(LINES)}).status_code == 403
    assert csrf_staff_client.post(run_url, {"k": "5"}).status_code == 403
    assert evalrun_list(tenant=tenant) == []

    page = csrf_staff_client.get(reverse("console:tenant-evaluation", args=[tenant.slug]))
    token = form_token(page.content.decode())
    response = csrf_staff_client.post(
        import_url, {"file": _jsonl(LINES, "other.jsonl"), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert [s.name for s in evalset_list(tenant=tenant)] == ["other", "zoo"]
