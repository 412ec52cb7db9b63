"""The HTML reports rendered by a real headless Chromium: plots drawn and sized, nothing
fetched, injected markup inert. A screenshot of each report type is kept for a person to look
at, in build/report-screenshots/.

The reports come from a real (small) demo run: the loop over drifting data, with a concept
change, a retrain, a promoted canary, a rolled-back one and one left in flight.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import Browser, Page, chromium_path
from retrain.cli import main
from retrain.drift import Bar, DriftReport, FeatureDrift, Signal
from retrain.reports import CSP, step_html

pytestmark = pytest.mark.integration  # starts Chromium, runs the whole loop

SHOTS = Path(__file__).resolve().parents[2] / "build" / "report-screenshots"
STEPS = ("ingest", "label", "train", "evaluate", "deploy", "rollout")
#: A shorter demo: the concept changes at week 4; weeks 0-4 are trained (week 4's canary is
#: promoted), then the rollback drill, and week 5's canary is left in flight.
WINDOWS, ROWS, CHANGE = 8, 1500, 4

#: Markup a feature name or category could carry: each would run or fetch if not escaped.
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_CATEGORY = "<script>window.__pwned=2</script>"
HOSTILE_FETCH = '<img src="http://127.0.0.1:9/leak">'

PLOT_SIZES = """[...document.querySelectorAll('svg.plot')].map(s => {
  const r = s.getBoundingClientRect(); return [r.width, r.height]; })"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(chromium_path()) as b:
        yield b


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo run's work directory (its report/ holds the history page and step reports)."""
    chromium_path()  # skip before the slow part when there is no browser
    work = tmp_path_factory.mktemp("demo")
    args = [
        "demo",
        "--workdir",
        str(work),
        "--engine",
        "direct",
        "--windows",
        str(WINDOWS),
        "--rows",
        str(ROWS),
        "--drift-window",
        str(CHANGE),
    ]
    assert main(args) == 0
    return work


def only_the_page_itself(page: Page, path: Path) -> None:
    assert page.requested_urls() == [path.resolve().as_uri()]
    assert page.console_and_errors() == []


def plots_are_drawn(page: Page, least: int) -> list[list[float]]:
    sizes = page.evaluate(PLOT_SIZES)
    assert len(sizes) >= least
    for width, height in sizes:
        assert width >= 150 and height >= 100, sizes
    # Bars, lines and points really rendered inside them (not just empty frames).
    shapes = page.evaluate(
        "document.querySelectorAll('svg.plot rect.bar, svg.plot .point, svg.plot .interval').length"
    )
    assert shapes >= least
    return list(sizes)


def test_history_page_shows_the_change_the_retrain_and_the_canaries(
    browser: Browser, demo: Path
) -> None:
    index = demo / "report" / "index.html"
    page = browser.open(index)
    plots_are_drawn(page, 3)
    only_the_page_itself(page, index)
    page.screenshot(SHOTS / "history.png")
    titles = page.evaluate(
        "[...document.querySelectorAll('svg.plot .marker title')].map(t => t.textContent)"
    )
    joined = "\n".join(titles)
    assert "challenger blessed" in joined
    assert "deployed" in joined and "as canary" in joined
    assert re.search(r"canary \S+ promoted", joined)
    assert re.search(r"canary \S+ rolled back", joined)
    # The concept change: after it, the old champion scores worse on the new window's rows
    # than it did before it, and the challenger trained on it does better.
    champion = page.evaluate(
        "[...document.querySelectorAll('svg.plot circle.point title')]"
        ".map(t => t.textContent).filter(t => t.startsWith('champion'))"
    )
    values = {t.split(" at ")[1].split(":")[0]: float(t.rsplit(": ", 1)[1]) for t in champion}
    before = [values[str(w)] for w in range(1, CHANGE)]
    assert values[str(CHANGE)] < min(before) - 0.1
    # Every step report it links to is beside it.
    hrefs = page.evaluate(
        "[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"
    )
    assert len(hrefs) >= 30
    for href in hrefs:
        assert (index.parent / href).is_file(), href


@pytest.mark.parametrize("step", STEPS)
def test_each_step_report_draws_its_plots(browser: Browser, demo: Path, step: str) -> None:
    """The run of the window after the change: drift, retrain, canary promoted."""
    runs = demo / "store" / "runs"
    run = next(
        r
        for r in sorted(runs.iterdir())
        if (r / "rollout.json").exists() and r.name.startswith(f"w{CHANGE}-")
    )
    path = run / f"{step}.html"
    assert json.loads((run / f"{step}.json").read_text())["status"] == "succeeded"
    page = browser.open(path)
    plots_are_drawn(page, 1)
    only_the_page_itself(page, path)
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    page.screenshot(SHOTS / f"{step}.png")


def hostile_report() -> dict[str, object]:
    feature = FeatureDrift(
        feature=HOSTILE_NAME,
        kind="categorical",
        method="jensenshannon",
        test="distance",
        statistic=0.4,
        threshold=0.1,
        drifted=True,
        histogram=[Bar(HOSTILE_CATEGORY, 0.2, 0.6), Bar(HOSTILE_FETCH, 0.8, 0.4)],
        unseen_categories={HOSTILE_CATEGORY: 3},
    )
    signal = Signal("feature_share", True, 1.0, 0.5, f"drifted: {HOSTILE_NAME}")
    return {"drift": DriftReport([feature], [signal], 100, 100).to_dict()}


@pytest.mark.parametrize("policy", ["as written", "without its CSP"])
def test_injected_markup_is_shown_never_run_or_fetched(
    browser: Browser, tmp_path: Path, policy: str
) -> None:
    """Escaping alone keeps the markup inert: also with the page's CSP taken out."""
    html = step_html(
        "ingest",
        f"window {HOSTILE_CATEGORY}",
        hostile_report(),
        f"# {HOSTILE_NAME}\n{HOSTILE_FETCH}\n",
    )
    if policy == "without its CSP":
        meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        assert meta in html
        html = html.replace(meta, "")
    path = tmp_path / "hostile.html"
    path.write_text(html, encoding="utf-8")
    page = browser.open(path)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img, script').length") == 0
    text = page.evaluate("document.body.innerText")
    for markup in (HOSTILE_NAME, HOSTILE_CATEGORY, HOSTILE_FETCH):
        assert markup in text
    plots_are_drawn(page, 1)
    only_the_page_itself(page, path)
    if policy == "as written":
        page.screenshot(SHOTS / "injected-markup.png")
