"""The comparison page in a real browser: Debian's chromium (/usr/bin/chromium) driven by Playwright.

Three pages made from real renders: `diff A B --html` of two stills (clip_guidance_scale 5000 and 1500),
of two 3-frame 2D animations (zoom differs from frame 1 on), and a 2x2 sweep's comparison.html. Each
loads with no console error and no network request; the images, PSNR and the settings table are there;
the A/B wipe slider moves; the frame slider steps through frames; sweep cells can be picked; and the page
works inside an iframe sandboxed to `allow-scripts`, as MLflow's artifact view shows HTML.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_helpers import run_cli, small_smoke_doc, write_spec

pytestmark = [pytest.mark.browser, pytest.mark.render, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--disable-extensions", "--mute-audio"]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    base = tmp_path_factory.mktemp("pages")
    out = base / "out"
    still = write_spec(base / "still.toml", small_smoke_doc(run={"display_rate": 100}))
    anim = write_spec(base / "anim.toml", small_smoke_doc(run={"display_rate": 100},
                                                          animation={"animation_mode": "2D", "max_frames": 3}))
    for args in ([still], [still, "--set", "clip_guidance_scale=1500"], [anim],
                 [anim, "--set", "zoom='0: (1), 1: (1.2)'"]):
        code, _, err = run_cli("render", *map(str, args), "--out", str(out), "--no-track", "--quiet")
        assert code == 0, err
    runs = out / "smoke"
    made = {}
    for name, (a, b) in {"still": ("run-0001", "run-0002"), "anim": ("run-0003", "run-0004")}.items():
        page = base / f"{name}.html"
        code, text, err = run_cli("diff", str(runs / a), str(runs / b), "--html", str(page))
        assert code == 1 and f"comparison page: {page}" in err, err  # they differ
        made[name] = page
    code, _, err = run_cli("sweep", str(still), "--set", "clip_guidance_scale=1500,10000", "--set", "steps=4,5",
                           "--out", str(out), "--no-track", "--quiet")
    assert code == 0, err
    made["sweep"] = runs / "sweep-0001" / "comparison.html"
    return made


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page with its console errors, uncaught exceptions and every request that was not data:/file:/blob:."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            url = r.request.url
            if url.startswith(("data:", "file:", "blob:", "about:")):
                r.continue_()
            else:
                self.requests.append(url)
                r.abort()

        self.page.route("**/*", route)

    def open(self, path: Path):
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_function("document.getElementById('heat').dataset.peak !== undefined")
        return self.page

    def check_clean(self):
        assert self.errors == [] and self.requests == []


def _loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "el => el.complete && el.naturalWidth > 0")


def _rows(page, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.textContent))")


def test_two_stills(pages, browser):
    w = Watched(browser)
    page = w.open(pages["still"])
    assert _loaded(page, "#img-a") and _loaded(page, "#img-b")
    assert page.eval_on_selector("#img-a", "e => e.src") != page.eval_on_selector("#img-b", "e => e.src")
    assert ["", "guidance.clip_guidance_scale", "5000", "1500"] in _rows(page, "settings")
    assert re.search(r"smoke_0000\.png: differs, PSNR \d+\.\d\d dB", page.inner_text("#stats"))
    assert page.eval_on_selector("#heat", "c => [c.width, c.height]") == [64, 64]
    assert int(page.eval_on_selector("#heat", "c => c.dataset.peak")) > 0
    # the A/B wipe moves with its slider
    assert "50%" in page.eval_on_selector("#wipe-b", "e => getComputedStyle(e).clipPath")
    page.fill("#wipe-pos", "20")
    assert "20%" in page.eval_on_selector("#wipe-b", "e => getComputedStyle(e).clipPath")
    assert page.eval_on_selector("#wipe-line", "e => e.style.left") == "20%"
    assert page.is_hidden("#frame-box")  # one image: no frame slider
    w.check_clean()


def test_two_animations_step_through_frames(pages, browser):
    w = Watched(browser)
    page = w.open(pages["anim"])
    assert page.is_visible("#frame-box")
    assert page.eval_on_selector("#frame", "e => e.max") == "2"
    assert "smoke_0000.png" in page.inner_text("#frame-name")
    assert "identical" in page.inner_text("#stats")  # frame 0 does not move
    first = page.eval_on_selector("#img-a", "e => e.src")
    page.fill("#frame", "2")
    assert "smoke_0002.png" in page.inner_text("#frame-name")
    assert page.eval_on_selector("#img-a", "e => e.src") != first
    assert re.search(r"smoke_0002\.png: differs, PSNR", page.inner_text("#stats"))
    # the settings diff per frame, in DD's terms
    rows = _rows(page, "settings")
    assert any(r[0] == "frames 1–2" and r[1] == "zoom" for r in rows), rows
    w.check_clean()


def test_sweep_page_picks_any_two_cells(pages, browser):
    w = Watched(browser)
    page = w.open(pages["sweep"])
    cells = page.eval_on_selector_all("#cells .cell", "cs => cs.map(c => c.querySelector('.vals').textContent)")
    assert cells == ["clip_guidance_scale=1500  steps=4", "clip_guidance_scale=1500  steps=5",
                     "clip_guidance_scale=10000  steps=4", "clip_guidance_scale=10000  steps=5"]
    assert page.eval_on_selector_all("#cells .cell img", "is => is.every(i => i.complete && i.naturalWidth > 0)")
    assert [r[1] for r in _rows(page, "settings")] == ["diffusion.steps"]  # cell-00 vs cell-01
    page.click("#cells .cell >> nth=2")  # A = cell-02
    page.click("#cells .cell >> nth=3")  # B = cell-03
    page.wait_for_function("document.getElementById('label-b').textContent.includes('cell-03')")
    assert "cell-02" in page.inner_text("#label-a")
    page.click("#cells .cell >> nth=0")  # A = cell-00: differs from cell-03 in both keys
    settings = {r[1]: (r[2], r[3]) for r in _rows(page, "settings")}
    assert settings == {"guidance.clip_guidance_scale": ("1500", "10000"), "diffusion.steps": ("4", "5")}
    assert "PSNR" in page.inner_text("#stats")
    page.fill("#wipe-pos", "75")
    assert "75%" in page.eval_on_selector("#wipe-b", "e => getComputedStyle(e).clipPath")
    w.check_clean()


def test_page_works_in_mlflows_sandboxed_iframe(pages, browser):
    """MLflow shows an HTML artifact as a blob: URL in <iframe sandbox="allow-scripts">: an opaque origin."""
    w = Watched(browser)
    page = w.page
    page.goto("about:blank")
    html = pages["sweep"].read_text(encoding="utf-8")
    page.evaluate("""html => {
        const f = document.createElement('iframe');
        f.sandbox = 'allow-scripts'; f.width = 1100; f.height = 800;
        f.src = URL.createObjectURL(new Blob([html], {type: 'text/html'}));
        document.body.appendChild(f);
    }""", html)
    frame = page.frame_locator("iframe")
    frame.locator("#heat[data-peak]").wait_for(state="attached")
    assert frame.locator("#cells .cell").count() == 4
    assert int(frame.locator("#heat").get_attribute("data-peak")) > 0  # the canvas was readable: not tainted
    w.check_clean()


def test_run_data_cannot_break_out_of_the_page():
    """Labels and settings come from run folders (untrusted): embedded as JSON that cannot close its script."""
    from disco_spec.repro.compare_page import render_page

    evil = "</script><script>alert(1)</script><!--"
    data = {"title": evil, "kind": "diff", "initial": [0, 1], "notes": [evil],
            "runs": [{"label": evil, "values": {evil: evil}, "frames": [], "kind": "run"}] * 2,
            "pairs": {"0,1": {"same": False, "differences": 1, "settings": [{"where": "", "setting": evil, "a": evil,
                                                                             "b": evil, "text": evil}],
                              "other": [], "outputs": [], "notes": []}}}
    page = render_page(data)
    template = render_page({**data, "title": "t", "notes": [], "runs": [], "pairs": {}})
    assert page.count("</script>") == template.count("</script>") == 2
    assert page.count("<script") == template.count("<script") and "<!--" not in page
    assert "&lt;/script&gt;" in page.split("<title>")[1]  # the title is escaped HTML


def test_html_needs_two_runs_not_out_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    code, _, err = run_cli("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--html", str(tmp_path / "p.html"))
    assert code == 2 and "--html" in err and not (tmp_path / "p.html").exists()
