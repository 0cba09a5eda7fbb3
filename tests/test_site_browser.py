"""The built site as a reader uses it: Playwright for Python driving Debian's Chromium.

The real catalogue (``papers/``) is built once per module into a temporary folder and served by
``http.server`` on 127.0.0.1. Every request that would leave 127.0.0.1 is aborted and recorded,
every console error is recorded, and each test fails on either. Screenshots of the home page, a
category page and a paper page go to ``test-artifacts/``.

Chromium comes from Debian (``apt-get install chromium``; ``.ci/run`` installs it), never from
``playwright install``. Without it the tests skip locally and fail under CI (``CI`` set).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kdsurvey.exporters import site
from kdsurvey.records.catalogue import load

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("KDSURVEY_CHROMIUM", "/usr/bin/chromium")
DKD = "zhao2022decoupled"


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(catalogue, site folder, base URL): the real catalogue's site, served on 127.0.0.1.

    The server starts first so that the site is built with its address as ``site_url``: Material's
    instant navigation follows only the links its sitemap.xml lists, as ``mkdocs serve`` does.
    """
    tmp = tmp_path_factory.mktemp("browser")
    out = tmp / "public"
    out.mkdir()
    handler = functools.partial(_Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    config = site.copy_project(tmp / "project")
    catalogue = load(ROOT / "papers")
    site.build(catalogue, config, out, site_url=base)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield catalogue, out, base
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def built(served):
    return served[:2]


@pytest.fixture(scope="module")
def base_url(served):
    return served[2]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright (python) is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    manager = sync_playwright().start()
    chromium = manager.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    yield chromium
    chromium.close()
    manager.stop()


class Reader:
    """A page plus what went wrong on it: console errors and requests leaving 127.0.0.1."""

    def __init__(self, browser, base_url: str):
        self.base = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.external: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _route(self, route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.external.append(url)
            route.abort()

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def goto(self, path: str):
        self.page.goto(self.base + path, wait_until="load")
        self.page.wait_for_load_state("networkidle")
        return self.page

    def screenshot(self, name: str):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)

    def check(self):
        assert not self.external, f"requests leaving 127.0.0.1: {self.external}"
        assert not self.errors, "\n".join(self.errors)


@pytest.fixture
def reader(browser, base_url):
    r = Reader(browser, base_url)
    yield r
    try:
        r.check()
    finally:
        r.context.close()


def _visible_years(page) -> list[int]:
    return [
        int(y)
        for y in page.eval_on_selector_all(
            "table[data-kd-papers] tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.year)"
        )
    ]


# -- the tests --------------------------------------------------------------------------------


def test_home_page(reader, built):
    catalogue, _ = built
    page = reader.goto("")
    assert page.locator(".md-content h1").inner_text().startswith("Knowledge distillation")
    assert page.locator(".kd-chart svg rect").count() > 0
    stats = page.locator(".kd-stats strong").first.inner_text()
    assert stats == str(len(catalogue.papers))
    assert page.locator(".grid.cards li").count() == len(catalogue.categories)
    reader.screenshot("home.png")


def test_search_decoupled_lands_on_dkd(reader):
    page = reader.goto("")
    page.keyboard.press("/")  # Material's shortcut opens the search
    page.locator("input.md-search__input").press_sequentially("decoupled", delay=30)
    results = page.locator(f".md-search-result__item > a[href*='{DKD}']")
    results.first.wait_for(timeout=15000)
    results.first.click()
    page.wait_for_url(f"**/catalogue/papers/{DKD}/**")
    title = page.locator(".md-content h1", has_text="Decoupled Knowledge Distillation")
    title.wait_for(timeout=10000)  # instant navigation swaps the content in
    assert title.inner_text().startswith("Decoupled Knowledge Distillation")


@pytest.mark.parametrize("query", ["dkd", "2203.08679", "Borui Zhao"])
def test_search_by_loss_arxiv_id_and_author(reader, query):
    page = reader.goto("")
    page.keyboard.press("/")
    page.locator("input.md-search__input").press_sequentially(query, delay=30)
    page.locator(f".md-search-result__item > a[href*='{DKD}']").first.wait_for(timeout=15000)


def test_category_table_filters_to_a_year(reader, built):
    catalogue, _ = built
    page = reader.goto("catalogue/categories/logit/")
    page.locator(".kd-filters").wait_for()
    rows = page.locator("table[data-kd-papers] tbody tr")
    assert rows.count() == len(catalogue.in_category("logit"))
    page.select_option("select[name=from]", "2024")
    page.select_option("select[name=to]", "2024")
    expected = sum(1 for p in catalogue.in_category("logit") if p.year == 2024)
    assert expected > 0
    assert page.locator("table[data-kd-papers] tbody tr:not([hidden])").count() == expected
    assert set(_visible_years(page)) == {2024}
    assert page.locator(".kd-count").inner_text().startswith(f"{expected} of ")
    reader.screenshot("category.png")


def test_category_table_filters_by_venue_task_code_and_text(reader, built):
    catalogue, _ = built
    papers = catalogue.in_category("logit")
    page = reader.goto("catalogue/categories/logit/")
    visible = page.locator("table[data-kd-papers] tbody tr:not([hidden])")

    page.check("input[name=code]")
    assert visible.count() == sum(1 for p in papers if p.links.code)
    page.uncheck("input[name=code]")

    venue = catalogue.venues[papers[0].venue].short
    page.select_option("select[name=venue]", venue)
    assert visible.count() == sum(1 for p in papers if catalogue.venues[p.venue].short == venue)
    page.select_option("select[name=venue]", "")

    task = "segmentation"
    page.select_option("select[name=task]", task)
    assert visible.count() == sum(1 for p in papers if task in set(p.tasks))
    page.select_option("select[name=task]", "")

    page.fill("input[name=q]", "dkd")
    expected = [p for p in papers if any("dkd" in n for n in p.loss) or "dkd" in p.title.lower()]
    assert visible.count() == len(expected)


def test_category_table_sorts_by_year(reader):
    page = reader.goto("catalogue/categories/feature/")
    header = page.locator("th", has_text="Year").locator("button")
    header.click()
    years = _visible_years(page)
    assert years == sorted(years) and len(set(years)) > 1
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Year")
    header.click()
    assert _visible_years(page) == sorted(years, reverse=True)
    page.locator("th", has_text="Title").locator("button").click()
    titles = page.eval_on_selector_all(
        "table[data-kd-papers] tbody tr td:first-child", "cells => cells.map(c => c.innerText)"
    )
    assert titles == sorted(titles, key=str.casefold)


def test_paper_page(reader):
    import bibtexparser

    page = reader.goto(f"catalogue/papers/{DKD}/")
    assert (
        page.locator(".md-content h1").inner_text().startswith("Decoupled Knowledge Distillation")
    )
    block = page.locator("#bibtex ~ .highlight").first
    assert block.locator("button[data-clipboard-target]").count() == 1  # the copy button
    code = block.locator("code")
    assert code.evaluate("c => c.scrollWidth <= c.clientWidth + 1")  # wrapped, not clipped
    library = bibtexparser.parse_string(code.inner_text())
    assert [e.key for e in library.entries] == [DKD] and not library.failed_blocks
    assert page.locator("a[href$='/losses/dkd/']").count() >= 1  # links to the loss page
    assert page.locator("a[download]").first.get_attribute("download") == f"{DKD}.bib"
    notes = page.locator("details", has_text="Curation notes")
    if notes.count():
        assert notes.first.get_attribute("open") is None  # collapsed
    edit = page.locator("a[rel=edit]").get_attribute("href")
    assert edit.endswith(f"/papers/{DKD}.yaml")
    reader.screenshot("paper.png")


def test_loss_page_shows_usage_and_rendered_equation(reader):
    from kdsurvey.exporters.loss_facts import facts
    from kdsurvey.exporters.usage import code

    page = reader.goto("catalogue/losses/dkd/")
    # the script a reader copies is the one tests/test_usage.py runs
    assert (
        page.locator(".highlight").first.inner_text().strip() == code("dkd", facts("dkd")).strip()
    )
    formula = page.locator(".kd-math math").first
    box = formula.bounding_box()
    assert box and box["height"] > 15 and box["width"] > 100  # MathML drawn, not raw text
    assert "\\" not in page.locator(".md-content").inner_text()
    assert page.locator(f"a[href*='papers/{DKD}']").count() >= 1  # which papers use it
    reader.screenshot("loss.png")


# query -> the page its first result must open (the first *paper* result for "DKD": the dkd
# loss page, whose first line links to the paper, may come before it)
SEARCHES = [
    ("decoupled", f"catalogue/papers/{DKD}/"),
    ("attention transfer", "catalogue/papers/zagoruyko2017paying/"),
    ("Hinton", "catalogue/papers/hinton2015distilling/"),
    ("2203.08679", f"catalogue/papers/{DKD}/"),
    ("Borui Zhao", f"catalogue/papers/{DKD}/"),
    ("crd", "catalogue/losses/crd/"),
    ("CVPR", "catalogue/venues/cvpr/"),
    ("segmentation", None),  # any result: checked below to be a page, not an error
]


def _search(page, query: str) -> list[str]:
    page.keyboard.press("/")
    page.locator("input.md-search__input").press_sequentially(query, delay=30)
    page.locator(".md-search-result__item > a").first.wait_for(timeout=15000)
    page.wait_for_timeout(300)  # the last keystroke's results replace the earlier ones
    return page.eval_on_selector_all(
        ".md-search-result__item > a",
        "as => as.map(a => new URL(a.href).pathname.replace(/^\\//, ''))",
    )


@pytest.mark.parametrize(("query", "expected"), SEARCHES)
def test_search_first_result(reader, query, expected):
    page = reader.goto("")
    found = _search(page, query)
    if expected:
        assert found[0] == expected, found[:4]


def test_search_dkd_ranks_the_dkd_paper_above_papers_citing_it(reader):
    page = reader.goto("")
    found = _search(page, "DKD")
    papers = [f for f in found if f.startswith("catalogue/papers/")]
    assert papers[0] == f"catalogue/papers/{DKD}/", found[:4]
    assert found[0] in (papers[0], "catalogue/losses/dkd/"), found[:4]


def test_table_state_lives_in_the_url(reader, built):
    catalogue, _ = built
    page = reader.goto("catalogue/categories/logit/")
    visible = page.locator("table[data-kd-papers] tbody tr:not([hidden])")
    page.fill("input[name=q]", "Zhao")  # an author: matches DKD though its row does not show it
    assert page.locator(f"tbody tr:not([hidden]) a[href$='/papers/{DKD}/']").count() == 1
    page.locator("th", has_text="Year").locator("button").click()
    assert "q=Zhao" in page.url and "sort=2%3Aasc" in page.url
    shown = visible.count()
    page.locator(f"tbody tr:not([hidden]) a[href$='/papers/{DKD}/']").click()
    page.wait_for_url(f"**/papers/{DKD}/**")
    page.go_back()
    page.wait_for_url("**/categories/logit/**")
    page.locator(".kd-filters").wait_for()
    assert page.input_value("input[name=q]") == "Zhao"
    assert visible.count() == shown
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Year")
    # a shared link: the arXiv id filter, opened fresh
    page = reader.goto("catalogue/categories/logit/?q=2203.08679")
    assert visible.count() == 1


def _contrast(page, selector: str) -> float:
    return page.eval_on_selector(
        selector,
        """el => {
          const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
          const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255;
            return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
            return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
          let bg = null, node = el;
          while (node && node.nodeType === 1) {
            const c = rgb(getComputedStyle(node).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) { bg = c; break; }
            node = node.parentNode;
          }
          bg = bg || rgb(getComputedStyle(document.body).backgroundColor);
          const fg = rgb(getComputedStyle(el).color);
          const a = lum(fg), b = lum(bg);
          return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        }""",
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_own_colours_reach_4_5_to_1(browser, base_url, scheme):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(base_url, wait_until="load")
        for selector in (".kd-stats strong", ".kd-stats span"):
            assert _contrast(page, selector) >= 4.5, (scheme, selector)
        page.goto(base_url + "catalogue/categories/logit/", wait_until="load")
        page.locator(".kd-filters").wait_for()
        for selector in (".kd-filters .md-button", ".kd-count", "table[data-kd-papers] td"):
            assert _contrast(page, selector) >= 4.5, (scheme, selector)
    finally:
        context.close()


def test_phone_tables_show_every_column_with_large_tap_targets(browser, base_url, built):
    catalogue, _ = built
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(base_url + "catalogue/categories/logit/", wait_until="load")
        page.locator(".kd-filters").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        hidden = page.eval_on_selector_all(
            "table[data-kd-papers] tbody tr:not([hidden]) td",
            "tds => tds.filter(td => td.textContent.trim() && "
            "(td.offsetWidth === 0 || td.getBoundingClientRect().right > 390)).length",
        )
        assert hidden == 0
        small = page.eval_on_selector_all(
            ".kd-filters input, .kd-filters select, .kd-filters button, "
            "table[data-kd-papers] a, table[data-kd-papers] button",
            "els => els.filter(e => e.getBoundingClientRect().height < 24)"
            ".map(e => e.outerHTML.slice(0, 80))",
        )
        assert not small, small[:5]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-category.png"), full_page=False)
    finally:
        context.close()


def test_instant_navigation_keeps_the_tables_working(reader):
    page = reader.goto("")
    page.evaluate("window.__kd_no_reload = true")
    page.locator(".md-tabs__link", has_text="Papers").click()
    page.wait_for_url("**/catalogue/categories/**")
    page.locator(".kd-filters").wait_for()
    assert page.evaluate("window.__kd_no_reload === true")  # Material swapped the page in place
    page.select_option("select[name=from]", "2024")
    assert all(y >= 2024 for y in _visible_years(page))


def test_every_page_loads_without_errors_or_outside_requests(reader, built):
    _, out = built
    pages = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("index.html"))
    assert len(pages) > 20
    for path in pages:  # "load" (not network idle) keeps ~100 pages within seconds
        reader.page.goto(reader.base + ("" if path == "." else path + "/"), wait_until="load")
        assert reader.page.locator(".md-content h1").count() == 1, path
    reader.page.wait_for_load_state("networkidle")
    reader.check()


AXE = ROOT / "tests" / "fixtures" / "axe" / "axe.min.js"  # axe-core 4.14.1 (MPL-2.0), test only
AXE_PAGES = [
    "",
    "catalogue/categories/logit/",
    f"catalogue/papers/{DKD}/",
    "catalogue/losses/dkd/",
    "catalogue/losses/",
    "catalogue/venues/cvpr/",
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_wcag_violation(browser, base_url, scheme):
    """axe-core (vendored as a test fixture, never served) on the main page kinds, WCAG 2.2 AA."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        found = {}
        for path in AXE_PAGES:
            page.goto(base_url + path, wait_until="load")
            page.add_script_tag(path=str(AXE))
            violations = page.evaluate(
                """async () => (await axe.run(document, {runOnly: {type: 'tag',
                     values: ['wcag2a', 'wcag2aa', 'wcag21aa', 'wcag22aa']}}))
                   .violations.map(v => v.id + ': ' + v.nodes.slice(0, 3)
                     .map(n => n.target.join(' ')).join(' | '))"""
            )
            if violations:
                found[path or "/"] = violations
        assert not found, found
    finally:
        context.close()
