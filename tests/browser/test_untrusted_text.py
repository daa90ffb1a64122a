"""In a real browser: tenant-controlled text that carries markup (a document's file name and
title, its text, its metadata, questions, an evaluation set, a model answer) stays text on
every console page that shows it, and every console page sends the Content-Security-Policy
and runs under it without a single violation: autoescaping stops the markup, so the CSP never
has to, and the policy does not break the console's own scripts, styles and charts.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from console.csp import POLICY
from tests.browser.conftest import PASSWORD, shot
from tests.helpers import bearer, wait_until

SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
LINK = '<a href="javascript:window.__xss=1">open</a>'
PAYLOAD = f"{SCRIPT} {IMG} {LINK}"
# A file name cannot hold "/" (so no closing tag), and browsers escape quotes in it.
FILENAME_IMG = "<img src=x onerror=window.__xss=1>"
QUESTION = f"What do the zebras and penguins eat? {PAYLOAD}"

# Any of these in the DOM means tenant text became markup.
INJECTED = "img[src='x'], a[href^='javascript:'], [onerror]"
REPORT_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const text = `${e.violatedDirective} blocked ${e.blockedURI} ${e.sample}`;
  window.__violations.push(text);
  window.__cspViolation(text);
});
"""


class Watched:
    """A page that records CSP violations (reported by the page, and logged by Chromium) and
    the policy header of every console response, across navigations and htmx swaps."""

    def __init__(self, page):
        self.page, self.violations, self.policies = page, [], []
        page.expose_function("__cspViolation", self._reported)
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("response", self._response)

    def _reported(self, text: str) -> None:
        self.violations.append(text)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def _response(self, response) -> None:
        if "/console/" in response.url and response.request.resource_type in (
            "document",
            "xhr",
            "fetch",
        ):
            self.policies.append((response.url, response.headers.get("content-security-policy")))

    def visit(self, url: str, *expected: str) -> None:
        response = self.page.goto(url)
        assert response.status == 200, url
        self.check(*expected)

    def check(self, *expected: str) -> None:
        """Nothing ran, nothing was injected, the CSP had nothing to stop, every response
        carried it, and `expected` (hostile strings) are shown as the characters they are."""
        page = self.page
        assert page.evaluate("typeof window.__xss") == "undefined", page.url
        assert page.locator(INJECTED).count() == 0, page.url
        scripts = "[...document.scripts].filter(s => s.text.includes('__xss')).length"
        assert page.evaluate(scripts) == 0, page.url
        shown = page.locator("body").inner_text()
        for text in expected:
            assert text in shown, f"{text!r} is not shown as text on {page.url}"
        assert self.violations == [], page.url
        assert [url for url, policy in self.policies if policy != POLICY] == []


@pytest.fixture
def console(page, staff):
    watched = Watched(page)
    page.goto("/console/login/")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/")
    return watched


def test_hostile_text_is_shown_as_text_on_every_console_page(
    console, make_tenant, make_key, api, worker
):
    from rag.models import AnswerCacheEntry, Chunk, Document
    from tenants.context import tenant_context
    from tenants.services.quotas import quota_set

    page = console.page
    tenant = make_tenant("pool", name=f"Zoo {IMG}")
    key = make_key(tenant, name=f"key {IMG}")
    slug = tenant.slug
    console.check()  # the overview, before any data

    # The console upload: the file name becomes the title; an empty file is refused by name.
    page.goto(f"/console/tenants/{slug}/documents/")
    text_file = {
        "name": f"zebras {FILENAME_IMG}.txt",
        "mimeType": "text/plain",
        "buffer": f"The zebras eat meadow hay twice a day. {PAYLOAD}".encode(),
    }
    empty_file = {"name": f"empty {FILENAME_IMG}.txt", "mimeType": "text/plain", "buffer": b" "}
    page.get_by_label("Files").set_input_files([text_file, empty_file])
    page.get_by_role("button", name="Upload").click()
    page.locator("[data-status=ready]").wait_for(timeout=120_000)  # via the row's own polling
    console.check(f"zebras {FILENAME_IMG}", f"empty {FILENAME_IMG}.txt")

    # The API: a title, metadata and text; and a broken PDF that fails, for the overview.
    created = api.post(
        "/api/v1/documents",
        {
            "text": f"The penguins are fed herring every morning. {PAYLOAD}",
            "title": PAYLOAD,
            "metadata": {"note": PAYLOAD, PAYLOAD: "key"},
            "external_id": "penguins",
        },
        format="json",
        **bearer(key),
    )
    assert created.status_code == 202, created.content
    penguins = created.json()["id"]
    broken = SimpleUploadedFile("broken.pdf", b"%PDF-1.4 not a pdf at all", "application/pdf")
    response = api.post(
        "/api/v1/documents", {"file": broken, "title": PAYLOAD}, format="multipart", **bearer(key)
    )
    assert response.status_code == 202, response.content

    def all_done():
        with tenant_context(tenant):
            statuses = sorted(Document.objects.values_list("status", flat=True))
        return statuses if statuses == ["failed", "ready", "ready"] else None

    wait_until(all_done, timeout=120, message="the API documents were not ingested")
    console.visit(f"/console/tenants/{slug}/documents/", PAYLOAD, f"zebras {FILENAME_IMG}")
    # The row fragment, as htmx swaps it in (no script tags run) and fetched on its own.
    row_url = f"/console/tenants/{slug}/documents/{penguins}/row/"
    with page.expect_response(lambda r: r.url.endswith(row_url)):
        page.evaluate(
            "([url, id]) => htmx.ajax('GET', url, {target: '#doc-' + id, swap: 'outerHTML'})",
            [row_url, penguins],
        )
    page.locator(f"#doc-{penguins}").filter(has_text="window.__xss=1").wait_for()
    console.check(PAYLOAD)
    console.visit(row_url, PAYLOAD)

    with tenant_context(tenant):
        chunk_id = Chunk.objects.get(document_id=penguins).id
    console.visit(f"/console/tenants/{slug}/chunks/{chunk_id}/", PAYLOAD)

    # Questions: a search through the API, and the playground, whose sources carry the payload.
    searched = api.post("/api/v1/search", {"query": QUESTION}, format="json", **bearer(key))
    assert searched.status_code == 200, searched.content
    console.visit("/console/playground/")
    page.get_by_label("Tenant").select_option(value=slug)
    page.get_by_label("Question").fill(QUESTION)
    page.get_by_label("Max tokens").fill("4")
    page.get_by_label("Answer policy").select_option("annotate")  # every source read is listed
    page.get_by_role("button", name="Ask").click()
    page.locator("#citations li").nth(1).wait_for(timeout=60_000)
    console.check(PAYLOAD)  # the penguins' title and snippet, in the sources

    # An answer with markup in it: the small model will not write one on request, so the
    # cached answer (replayed to the same question) is given one, as a model could emit it.
    def cached():
        with tenant_context(tenant):
            return AnswerCacheEntry.objects.first()

    entry = wait_until(cached, message="the answer was not cached")
    with tenant_context(tenant):
        AnswerCacheEntry.objects.filter(pk=entry.pk).update(
            response={**entry.response, "answer": f"Herring. {PAYLOAD}"}
        )
    page.get_by_role("button", name="Ask").click()
    page.locator("#answer").filter(has_text=f"Herring. {PAYLOAD}").wait_for()
    page.locator("#citations li").nth(1).wait_for()
    console.check(f"Herring. {PAYLOAD}")
    shot(page, "untrusted-playground")

    # The query log, and a cited chunk swapped in by htmx.
    console.visit(f"/console/tenants/{slug}/queries/", QUESTION)
    page.locator(f"#query-log a[href$='/chunks/{chunk_id}/']").first.click()
    page.locator("#chunk-view").filter(has_text="penguins are fed").wait_for()
    console.check(PAYLOAD)
    shot(page, "untrusted-queries")

    # An evaluation set named, described and grouped with markup, imported and run.
    console.visit(f"/console/tenants/{slug}/evaluation/")
    line = {"question": QUESTION, "relevant": ["penguins"], "archetype": FILENAME_IMG}
    page.get_by_label("JSONL file").set_input_files(
        {"name": "set.jsonl", "mimeType": "application/json", "buffer": json.dumps(line).encode()}
    )
    page.get_by_label("Set name").fill(f"Set {SCRIPT}")
    page.get_by_label("Description").fill(PAYLOAD)
    page.get_by_role("button", name="Import").click()
    page.get_by_role("button", name=re.compile("Run evaluation")).click()
    page.locator("tbody[data-status=done]").wait_for(timeout=60_000)  # polled by htmx
    console.check(f"Set {SCRIPT}", PAYLOAD, FILENAME_IMG)
    console.visit(f"/console/tenants/{slug}/evaluation/", f"Set {SCRIPT}", FILENAME_IMG)
    shot(page, "untrusted-evaluation")

    # The tenant's other pages, the tenants list (and an htmx search echoing the query), the
    # overview (the failed PDF's title) with its chart, and the usage page with its chart.
    console.visit(f"/console/tenants/{slug}/", f"Zoo {IMG}")
    console.visit(f"/console/tenants/{slug}/keys/", f"key {IMG}")
    console.visit("/console/tenants/", f"Zoo {IMG}")
    with page.expect_response(lambda r: "/console/tenants/?q=" in r.url):
        page.get_by_label("Search by slug or name").fill(IMG)
    page.get_by_text("matching").wait_for()
    console.check(f"1 tenant matching “{IMG}”", f"Zoo {IMG}")
    # Predicates are functions: Playwright evals a string predicate in the page while it polls,
    # which the policy refuses.
    drawn = (
        "() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))?.width > 0"
    )
    for url in ("/console/", f"/console/tenants/{slug}/usage/"):
        console.visit(url)
        page.wait_for_function(drawn)  # the chart draws under the policy
        console.check()
    # Quota bars are sized by the stylesheet, not by an inline style the policy would refuse:
    # one API search of 4 allowed fills a quarter of its bar.
    quota_set(tenant=tenant, search_per_hour=4)
    console.visit(f"/console/tenants/{slug}/usage/")
    filled = page.evaluate(
        "() => { const s = document.querySelector('.bar > [data-percent=\"25\"]');"
        " return s.offsetWidth / s.parentElement.clientWidth; }"
    )
    assert filled == pytest.approx(0.25, abs=0.02)
    html = page.goto("/console/").text()
    assert escape(PAYLOAD) in html and PAYLOAD not in html  # the failed PDF's title, escaped
    console.check(PAYLOAD)
    shot(page, "untrusted-overview")


def test_the_policy_refuses_what_escaping_would_have_let_through(console):
    """The second wall is real: markup that does reach the DOM runs no handler, page script
    cannot eval, and htmx is configured to need neither eval nor inline styles."""
    page = console.page
    config = page.evaluate(
        "({eval: htmx.config.allowEval, scripts: htmx.config.allowScriptTags,"
        " self: htmx.config.selfRequestsOnly, styles: document.querySelectorAll('style').length})"
    )
    assert config == {"eval": False, "scripts": False, "self": True, "styles": 0}
    page.evaluate("html => document.body.insertAdjacentHTML('beforeend', html)", IMG)
    page.wait_for_function("() => window.__violations.some(v => v.startsWith('script-src'))")
    # A string timer is eval: the page runs it later, under the policy.
    page.evaluate("setTimeout('window.__xss = 2', 0)")
    page.wait_for_function("() => window.__violations.some(v => v.includes('blocked eval'))")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert len(console.violations) >= 2
