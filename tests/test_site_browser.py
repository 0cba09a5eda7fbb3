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
import re
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
    ("CVPR", "catalogue/venues/cvpr/"),
    ("segmentation", None),  # any result: checked below to be a page, not an error
]


def _search(page, query: str) -> list[str]:
    page.keyboard.press("/")
    page.locator("input.md-search__input").press_sequentially(query, delay=30)
    page.locator(".md-search-result__item > a").first.wait_for(timeout=15000)
    page.wait_for_timeout(300)  # the last keystroke's results replace the earlier ones
    return _search_results(page)


@pytest.mark.parametrize(("query", "expected"), SEARCHES)
def test_search_first_result(reader, query, expected):
    page = reader.goto("")
    found = _search(page, query)
    if expected:
        assert found[0] == expected, found[:4]


def _pages(found: list[str]) -> list[str]:
    """Result pages in order, sections folded into their page."""
    return list(dict.fromkeys(f.split("#")[0] for f in found))


def _settled_search(page, query: str) -> list[str]:
    """The results of ``query`` once the last keystroke's results have replaced the earlier
    ones: the list read until two readings 500 ms apart agree."""
    found = _search(page, query)
    for _ in range(20):
        page.wait_for_timeout(500)
        again = _search_results(page)
        if again == found:
            return found
        found = again
    return found


def _search_results(page) -> list[str]:
    return page.eval_on_selector_all(
        ".md-search-result__item > a",
        "as => as.map(a => new URL(a.href).pathname.replace(/^\\//, ''))",
    )


# query -> pages that must all be among the first 3 result pages: architecture names however
# written, a teacher -> student pair, and short method names (issue #22)
TOP3 = [
    ("resnet32x4", ["catalogue/leaderboards/cifar100/"]),
    ("ResNet-32x4", ["catalogue/leaderboards/cifar100/"]),
    ("32x4", ["catalogue/leaderboards/cifar100/"]),
    ("wrn_40_2", ["catalogue/leaderboards/cifar100/"]),
    ("WRN-40-2", ["catalogue/leaderboards/cifar100/"]),
    ("resnet32x4 resnet8x4", ["catalogue/leaderboards/cifar100/"]),
    ("ResNet-34 ResNet-18", ["catalogue/leaderboards/imagenet/"]),
    ("KD", ["catalogue/losses/kd/", "catalogue/papers/hinton2015distilling/"]),
    ("crd", ["catalogue/losses/crd/", "catalogue/papers/tian2020contrastive/"]),
]


@pytest.mark.parametrize(("query", "expected"), TOP3)
def test_search_finds_the_page_in_the_first_three(reader, query, expected):
    page = reader.goto("")
    top = _pages(_settled_search(page, query))[:3]
    assert set(expected) <= set(top), top


@pytest.mark.parametrize(("a", "b"), [("resnet32x4", "ResNet-32x4"), ("wrn_40_2", "WRN-40-2")])
def test_search_spellings_of_an_architecture_find_the_same_pages(reader, a, b):
    page = reader.goto("")
    first = _pages(_settled_search(page, a))
    page = reader.goto("")
    assert _pages(_settled_search(page, b)) == first


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
    assert _table_state(page) == {"q": ["Zhao"], "sort": ["2:asc"]}
    assert "q" not in parse_qs(urlsplit(page.url).query)  # Material's search parameter: untouched
    shown = visible.count()
    page.locator(f"tbody tr:not([hidden]) a[href$='/papers/{DKD}/']").click()
    page.wait_for_url(f"**/papers/{DKD}/**")
    page.go_back()
    page.wait_for_url("**/categories/logit/**")
    page.locator(".kd-filters").wait_for()
    assert page.input_value("input[name=q]") == "Zhao"
    assert visible.count() == shown
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Year")
    # a reload keeps the state
    page.reload(wait_until="load")
    page.locator(".kd-filters").wait_for()
    assert page.input_value("input[name=q]") == "Zhao" and visible.count() == shown
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("Year")
    # a shared link: the arXiv id filter, opened fresh, with no search dialog over it
    page = reader.goto("catalogue/categories/logit/?table=q%3D2203.08679")
    assert visible.count() == 1 and page.input_value("input[name=q]") == "2203.08679"
    assert not page.is_checked("#__search")  # Material's search dialog stays closed...
    assert page.input_value("input.md-search__input") == ""  # ...and was given no query


def _table_state(page) -> dict:
    return parse_qs(parse_qs(urlsplit(page.url).query).get("table", [""])[0])


def test_table_state_survives_back_from_another_site(reader):
    """Back from a page outside the site (a full page load) restores the filter, no dialog."""
    page = reader.goto("catalogue/venues/cvpr/")
    page.fill("input[name=q]", "decoupled")
    shown = page.locator("table[data-kd-papers] tbody tr:not([hidden])").count()
    assert 0 < shown < page.locator("table[data-kd-papers] tbody tr").count()
    page.goto(reader.base + "404.html", wait_until="load")  # any other document
    page.go_back(wait_until="load")
    page.locator(".kd-filters").wait_for()
    assert page.input_value("input[name=q]") == "decoupled"
    assert page.locator("table[data-kd-papers] tbody tr:not([hidden])").count() == shown
    assert not page.is_checked("#__search")


def test_a_filter_that_finds_nothing_says_so(reader):
    page = reader.goto("")
    page.locator("#all-papers ~ .kd-filters, .kd-filters").first.wait_for()
    page.fill("input[name=q]", "zzzz-no-such-paper")
    hint = page.locator(".kd-empty")
    assert hint.is_visible() and "No paper matches" in hint.inner_text()
    hint.locator("button").click()
    assert not hint.is_visible() and page.input_value("input[name=q]") == ""


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
    "catalogue/leaderboards/imagenet/",
    "catalogue/arena/",
    "404.html",
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


# -- phones, charts, caveats (issue #22) -------------------------------------------------------


def _phone(browser, scheme="light"):
    return browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, color_scheme=scheme
    )


def test_no_page_scrolls_sideways_on_a_phone(browser, base_url, built):
    """Every built page, of every type, at 390 px: the page is never wider than the screen."""
    _, out = built
    pages = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("index.html"))
    kinds = {p.split("/")[1] if p.startswith("catalogue/") else p for p in pages}
    assert {"papers", "losses", "leaderboards", "categories", "venues", "arena"} <= kinds
    context = _phone(browser)
    try:
        page = context.new_page()
        wide = []
        for path in [*pages, "404.html"]:
            url = base_url + ("" if path == "." else path if path.endswith(".html") else path + "/")
            page.goto(url, wait_until="load")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 390:
                wide.append((path, width))
        assert not wide, wide
    finally:
        context.close()


def test_leaderboards_keep_rank_method_value_and_gain_on_a_phone(browser, base_url):
    context = _phone(browser)
    try:
        page = context.new_page()
        page.goto(base_url + "catalogue/leaderboards/imagenet/", wait_until="load")
        rows = page.locator("table[data-kd-board] tbody tr")
        assert rows.count() > 20
        for i in range(min(rows.count(), 30)):
            for cls in ("kd-rank", "kd-method", "kd-value", "kd-gain"):
                box = rows.nth(i).locator(f"td.{cls}").bounding_box()
                assert box and box["width"] > 0 and box["x"] + box["width"] <= 390, (i, cls)
        label = rows.first.locator("td.kd-value").evaluate(
            "td => getComputedStyle(td, '::before').content"
        )
        assert "Top-1" in label  # the card labels its number, the header being hidden
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-leaderboard.png"), full_page=False)
    finally:
        context.close()


def test_a_nonstandard_result_is_ranked_apart_with_its_caveat_on_the_row(reader):
    """HSAKD* used a stronger teacher: it is not #1 of the main ranking, and the row says why."""
    page = reader.goto("catalogue/leaderboards/cifar100/")
    board = "#cifar100-resnet56-resnet20-test"
    main = page.locator(f"{board}-table tbody tr")
    assert main.count() > 5 and "HSAKD*" not in main.all_inner_texts()[0]
    assert not any("HSAKD*" in t for t in main.all_inner_texts())
    apart = page.locator(f"{board}-apart tbody tr", has_text="HSAKD*")
    caveat = apart.locator(".kd-caveat")
    assert caveat.is_visible() and "77.20 against the 73.44" in caveat.inner_text()
    assert page.locator(".kd-note[title], td [title]").count() == 0  # nothing only on hover


def test_one_table_per_pair_with_top1_and_top5(reader):
    page = reader.goto("catalogue/leaderboards/imagenet/")
    assert page.locator("h2", has_text="ResNet-34 → ResNet-18").count() == 1
    head = page.locator("#imagenet-resnet34-resnet18-val-table thead").inner_text()
    assert "Top-1 (%)" in head and "Top-5 (%)" in head and "error" not in head
    converted = page.locator("#imagenet-resnet34-resnet18-val-table tr", has_text="CD+GKD+EDT")
    assert "printed as Top-1 error 27.61%" in converted.inner_text()


def _chart_label_sizes(page) -> list[float]:
    """Rendered size (px) of every visible chart label: its font size times the SVG's scale."""
    return page.eval_on_selector_all(
        ".kd-chart svg text",
        """ts => ts.filter(t => getComputedStyle(t).display !== 'none').map(t => {
             const svg = t.ownerSVGElement;
             const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
             return parseFloat(getComputedStyle(t).fontSize) * scale; })""",
    )


def _luminance(rgb):
    def channel(x):
        x /= 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(float(v)) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _ratio(a, b):
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _rgb(text: str):
    import re

    return [float(v) for v in re.findall(r"[\d.]+", text)][:3]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_charts_are_legible_on_a_phone_with_marks_at_3_to_1(browser, base_url, scheme):
    context = _phone(browser, scheme)
    try:
        page = context.new_page()
        for path in ("", "catalogue/leaderboards/cifar100/"):
            page.goto(base_url + path, wait_until="load")
            sizes = _chart_label_sizes(page)
            assert sizes and min(sizes) >= 11, (path, min(sizes))
        background = _rgb(page.evaluate("getComputedStyle(document.body).backgroundColor"))
        marks = page.eval_on_selector_all(
            ".kd-board-chart svg[role=img] circle, .kd-board-chart svg[role=img] polyline",
            """els => els.map(e => { const s = getComputedStyle(e);
                 return [e.getAttribute('class'), s.fill, s.stroke]; })""",
        )
        assert marks
        for cls, fill, stroke in marks:
            colour = stroke if fill == "none" else fill
            assert _ratio(_rgb(colour), background) >= 3, (scheme, cls, colour)
        # each legend key draws its mark: the same element and the same colours
        for cls in ("kd-board-dot", "kd-board-best", "kd-board-kd"):
            styles = page.eval_on_selector_all(
                f".kd-board-chart .{cls}",
                """els => els.map(e => { const s = getComputedStyle(e);
                     return [e.tagName, s.fill, s.stroke]; })""",
            )
            assert len({tuple(x) for x in styles}) == 1, (cls, set(map(tuple, styles)))
        page.goto(base_url, wait_until="load")
        for cls in ("kd-cat-logit", "kd-cat-feature", "kd-cat-similarity"):
            fill = page.eval_on_selector(f"rect.{cls}", "e => getComputedStyle(e).fill")
            assert _ratio(_rgb(fill), background) >= 3, (scheme, cls, fill)
    finally:
        context.close()


def test_home_explains_the_terms_and_every_tile_is_a_link(reader, built):
    catalogue, _ = built
    page = reader.goto("")
    terms = page.locator(".kd-terms dt").all_inner_texts()
    assert terms == ["Leaderboards", "Arena", "Evidence levels"]
    tiles = page.locator(".kd-stats > *")
    assert tiles.count() >= 6 and tiles.count() == page.locator(".kd-stats > a[href]").count()
    cards = page.locator(".grid.cards li")
    box = cards.first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] - 5)  # not the title
    page.wait_for_url("**/catalogue/categories/**")
    page = reader.goto("")
    rows = page.locator(
        "#all-papers ~ * table[data-kd-papers] tbody tr, table[data-kd-papers] tbody tr"
    )
    assert rows.count() == len(catalogue.papers)
    page.locator(".kd-stats a", has_text="with code").click()
    page.wait_for_function("document.querySelector('input[name=code]').checked")
    visible = page.locator("table[data-kd-papers] tbody tr:not([hidden])").count()
    assert visible == sum(1 for p in catalogue.papers if p.links.code)


def test_arena_rows_give_reasons_and_counts_agree(reader):
    page = reader.goto("catalogue/arena/")
    failed = page.locator("tr", has=page.locator("td.kd-value", has_text="failed"))
    assert failed.count() >= 1
    for i in range(failed.count()):
        reason = failed.nth(i).locator(".kd-caveat")
        # the exception and its message: "Failed: Diverged: non-finite loss at epoch 1, ..."
        assert reason.is_visible()
        assert re.match(r"Failed( on \d+ seeds?)?: (\w*Error|Diverged): \S", reason.inner_text())
    text = page.locator(".md-content").inner_text()
    assert "has not finished" not in text
    assert page.locator("a[rel=edit]").get_attribute("href").endswith("/results/arena.json")


def test_equations_scroll_inside_a_focusable_box(browser, base_url):
    context = _phone(browser)
    try:
        page = context.new_page()
        page.goto(base_url + "catalogue/losses/cirkd/", wait_until="load")
        boxes = page.locator(".kd-math")
        assert boxes.count() > 0
        assert all(boxes.nth(i).get_attribute("tabindex") == "0" for i in range(boxes.count()))
        wide = page.eval_on_selector_all(
            ".kd-math", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length"
        )
        assert wide >= 1  # at least one formula is wider than a phone, and scrolls in its box
        boxes.first.focus()
        assert page.evaluate("document.activeElement.classList.contains('kd-math')")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_long_paper_results_are_collapsed(reader):
    page = reader.goto("catalogue/papers/liu2023norm/")
    more = page.locator("details.kd-more-results")
    assert more.count() == 1 and more.get_attribute("open") is None
    shown = more.evaluate("d => d.previousElementSibling.querySelectorAll('tbody tr').length")
    assert shown == 10


def test_not_found_page_offers_search_and_the_main_lists(reader):
    page = reader.goto("404.html")
    assert page.locator(".md-content h1").inner_text() == "Page not found"
    page.locator("label[for=__search]", has_text="Search the catalogue").click()
    assert page.is_checked("#__search")
    page.keyboard.press("Escape")
    for path in ("catalogue/leaderboards/", "catalogue/losses/", "catalogue/venues/"):
        assert page.locator(f".md-content a[href$='/{path}']").count() == 1, path
