"""report.html of a demo-sized evaluation (1K synthetic images), rendered and opened in a real headless Chromium."""

import json
import os
import shutil

import pytest
from report_helpers import K_SWEEP, demo_sized_evaluation

from jobs.demo_report import METRICS
from teran_core.data.synth.vocabulary import ATTRIBUTE_FAMILIES
from teran_core.html_report.render import demo_page, evaluation_page
from teran_core.html_report.scenes import COLOURS
from teran_core.recall.report import plots
from teran_core.storage import resolve

MAX_PAGE_BYTES = 2 * 2**20  # the limit for the 1K-image demo report


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The evaluation page and the demo page, written to the test's output folder."""
    out = tmp_path_factory.mktemp("report_html")
    results, examples = demo_sized_evaluation(resolve(str(out / "run")), test_images=1000, queries=50, protocol=False)
    pages = {"report.html": evaluation_page(results, examples),
             "demo.html": demo_page([("teran", name, {k: r["metrics"][k] for k in METRICS}) for name, r in results["evaluators"].items()],
                                    ["a note"], list(METRICS), examples,
                                    {"recall against K'": plots(results)["recall_vs_kprime.png"]}, {"teran": "eval/teran/report.html"},
                                    [("root", str(out))])}
    for name, page in pages.items():
        (out / name).write_text(page)
    return out, results, examples


def test_the_page_is_small_self_contained_and_shows_every_part(rendered):
    out, results, examples = rendered
    page = (out / "report.html").read_text()
    assert len(page.encode()) < MAX_PAGE_BYTES
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # nothing fetched from elsewhere
    assert [r["k_candidates"] for r in results["sweep"]] == K_SWEEP
    assert len(examples["t2i"]) == len(examples["i2t"]) == 12
    assert sum(e["rank"] > 0 for e in examples["t2i"]) >= 6  # failures are shown where there are enough
    assert all(len(e["top"]) == 5 for e in examples["t2i"] + examples["i2t"])
    for e in examples["t2i"]:  # the top 5 are in score order, and ground truth is marked where it is among them
        scores = [t["score"] for t in e["top"]]
        assert scores == sorted(scores, reverse=True)
        assert any(t["correct"] for t in e["top"]) == (e["rank"] < 5)
    kinds = [a["kind"] for a in examples["alignments"]]
    assert "failure" in kinds and all("words" in a for a in examples["alignments"])
    for a in examples["alignments"]:  # the words' contributions add up to the pair's MrSw score
        assert sum(w["contribution"] for w in a["words"]) == pytest.approx(a["score"], abs=1e-3)
    assert set(COLOURS) == set(ATTRIBUTE_FAMILIES["colour"])
    json.dumps(examples)  # examples.json is plain JSON


def test_an_unlabelled_scene_and_a_missing_view_still_render(rendered):
    _, results, examples = rendered
    plain = json.loads(json.dumps(examples))
    for image in plain["images"].values():
        image["labels"] = None  # a dataset written before scene labels existed
    plain["alignments"][0] = {k: v for k, v in plain["alignments"][0].items() if k != "words"} | {"error": "another tokenizer"}
    page = evaluation_page(results, plain)
    assert "No alignment view: another tokenizer" in page and page.count('class="highlight"') < evaluation_page(results, examples).count('class="highlight"')


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["report.html", "demo.html"])
def test_the_page_in_a_headless_browser(rendered, name):
    """No console error, every image drawn, one highlighted region per content word; a screenshot is kept."""
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: chromium is missing (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    out = rendered[0]
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
        page.goto((out / name).as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth, e.naturalHeight])")
        scenes = page.eval_on_selector_all("svg.scene", "els => els.map(e => [e.getBoundingClientRect().width, e.querySelectorAll('rect').length])")
        views = page.eval_on_selector_all(".alignment", """els => els.map(v => [
            [...v.querySelectorAll('span.word.content')].map(w => w.dataset.word).sort(),
            [...v.querySelectorAll('rect.highlight')].map(r => r.dataset.word).sort(),
            [...v.querySelectorAll('rect.highlight')].filter(r => r.getBBox().width > 0).length])""")
        page.screenshot(path=str(out / f"{name}.png"), full_page=False)
        browser.close()
    print(f"screenshot: {out / f'{name}.png'}")
    assert problems == []
    assert images and all(complete and width > 0 and height > 0 for _, complete, width, height in images), images
    assert len(scenes) >= 12 * 6 and all(width > 0 and rects > 0 for width, rects in scenes)
    assert views, "no alignment view on the page"
    for words, boxes, drawn in views:
        assert words and words == boxes and drawn == len(boxes)  # one highlighted, drawn region per content word
    assert (out / f"{name}.png").stat().st_size > 10_000
