"""The advisor page reproduces the talk's 2018 table, and the page reads at 360 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web_pages import PASSWORDS

from fixtures.browser import keep_screenshot
from fixtures.serve import ServeProcess

# The talk (2018): 8 nodes of 2 vCPU / 7 GB, EUR per day for the whole cluster.
TALK_2018 = {"ovh": 12, "otc": 19, "outscale": 22, "cloudwatt": 22}


def test_advisor_reproduces_the_2018_table(
    web: ServeProcess, chromium: Any, screenshots: Path
) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{web.url}/ui/login")
        page.fill("#user", "alice")
        page.fill("#password", PASSWORDS["alice"])
        page.click("form button[type=submit]")
        page.wait_for_url(f"{web.url}/ui/clusters")
        page.goto(f"{web.url}/ui/advisor")
        page.fill("input[name=nodes]", "8")
        page.fill("input[name=vcpus]", "2")
        page.fill("input[name=ram]", "7")
        page.select_option("select[name=kind]", "commercial")
        page.fill("input[name=as_of]", "2018")
        page.click("#advisor-form button")
        page.wait_for_selector("#offers")
        rows = page.eval_on_selector_all(
            "#offers tbody tr",
            "rows => rows.map(r => [r.querySelector('.provider').textContent,"
            " Number(r.querySelector('.eur-day').textContent)])",
        )
        assert {name: round(eur) for name, eur in rows} == TALK_2018
        assert [name for name, _ in rows][:2] == ["ovh", "otc"]
        bars = page.eval_on_selector_all(
            "#chart g.bar text:first-child", "t => t.map(x => x.textContent)"
        )
        assert sorted(bars) == sorted(TALK_2018)
        assert page.locator("#excluded tbody tr").count() > 0  # each exclusion with its reason
        keep_screenshot(page, screenshots, "advisor")

        # readable on a phone: nothing wider than the screen, every control labelled
        page.set_viewport_size({"width": 360, "height": 740})
        for path in ("/ui/advisor?as_of=2018&kind=commercial", "/ui/clusters", "/ui/clusters/new"):
            page.goto(web.url + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
            unlabelled = page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                    .map(e => e.name)"""
            )
            assert unlabelled == [], (path, unlabelled)
    finally:
        context.close()
