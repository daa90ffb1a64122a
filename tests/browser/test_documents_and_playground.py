"""In a real browser: upload documents and watch their rows reach `ready` without reloading; ask
in the playground and see the answer stream in with citations; usage and the query log."""

import re

from tests.browser.conftest import shot

ZOO = (
    "# Lakeside zoo handbook\n\n## Zebras\n\nThe zebras at Lakeside zoo eat fresh meadow hay "
    "twice a day.\n\n## Penguins\n\nThe penguins are fed herring every morning."
)


def test_uploads_become_ready_live_and_the_playground_streams_an_answer(
    logged_in, make_tenant, worker, tmp_path
):
    tenant = make_tenant("bridge", name="Lakeside zoo")
    (tmp_path / "zoo.md").write_text(ZOO)
    (tmp_path / "notes.txt").write_text("Opening hours: nine to five, every day but Monday.")
    page = logged_in
    page.goto(f"/console/tenants/{tenant.slug}/documents/")
    page.get_by_label("Files").set_input_files([tmp_path / "zoo.md", tmp_path / "notes.txt"])
    page.get_by_role("button", name="Upload").click()
    rows = page.locator("tbody tr")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    url = page.url
    # No reload: the rows poll their own fragments until both say ready.
    page.wait_for_function(
        "() => document.querySelectorAll('[data-status=\"ready\"]').length === 2", timeout=120_000
    )
    assert page.url == url
    assert page.locator("[data-status=ready]").count() == 2
    shot(page, "tenant-documents")
    shot(page, "tenant-documents-390px", width=390)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Playground").click()
    page.get_by_label("Tenant").select_option(value=tenant.slug)
    page.get_by_label("Question").fill("What do the zebras eat?")
    page.get_by_label("Max tokens").fill("24")
    page.get_by_role("button", name="Ask").click()
    page.locator("#answer").filter(has_text=re.compile(r"\S")).wait_for()
    page.locator("#citations li").first.wait_for(timeout=60_000)
    assert page.locator("#answer").inner_text().strip()
    citations = page.locator("#citations").inner_text()
    assert "Lakeside zoo handbook" in citations or "zoo" in citations.lower()
    assert "Time to first token" in page.locator("#timings").inner_text()
    shot(page, "playground")
    page.locator("#citations a").first.click()  # the cited chunk, shown inline
    page.locator("#chunk-view").filter(has_text="meadow hay").wait_for()
    shot(page, "playground-chunk")
    shot(page, "playground-390px", width=390)

    page.goto(f"/console/tenants/{tenant.slug}/queries/")
    assert "What do the zebras eat?" in page.locator("main").inner_text()
    shot(page, "tenant-queries")
    page.goto(f"/console/tenants/{tenant.slug}/usage/")
    shot(page, "tenant-usage")
    page.goto("/console/")
    shot(page, "overview-with-data")
