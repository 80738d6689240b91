"""The reproduction report: its summary table, notes, file modes, and the page in a real
headless browser (Debian's `chromium` with `chromedriver`; `.ci/run` installs them) — every
image decodes, GIFs animate, the console stays clean. Built from a small fake results folder
(and one real `reproduce` of the sub-second k-means experiment), never from whole runs."""

from __future__ import annotations

import functools
import html.parser
import http.server
import json
import os
import shutil
import stat
import threading
import time

import numpy as np
import pytest

from jaxunsup import plots, report, report_notes

STYLE_CMD = "--vgg-weights vgg19-dcbb9e9d.pth"


def _entry(results=None, status="ok", seconds=12.5, **kw):
    entry = {"seed": "000 §2", "summary": "a summary", "mode": "quick", "status": status}
    entry.update(seconds=seconds, **kw)
    if results is not None:
        entry["results"] = results
    return entry


@pytest.fixture
def fake_run(tmp_path):
    """A results folder like `reproduce`'s: PNGs, a 2-frame GIF, a stalled conv AE, style
    transfer on random weights, a failure. Returns (workdir, entries)."""
    digits = np.linspace(0, 1, 4 * 28 * 28, dtype=np.float32).reshape(4, 28, 28, 1)
    plots.save_grid(tmp_path / "ae-stacked" / "reconstructions.png", digits, nrow=2)
    frames = [np.zeros((16, 16)), np.ones((16, 16))]  # black, white: visibly animated
    plots.save_gif(tmp_path / "gan-mlp" / "samples.gif", frames, fps=4)
    plots.save_image(tmp_path / "style-transfer" / "stylized.png", digits[0])
    loss = {"metric": "train loss per 1,200 steps", "ours": [0.085, 0.06], "seed": [0.083, 0.06]}
    row = {"metric": "test MSE", "ours": 0.0507, "seed": 0.044}
    entries = {
        "ae-stacked": _entry({"table": [loss, row], "figures": ["reconstructions.png"]}),
        "gan-mlp": _entry(
            {"table": [{"metric": "FD", "ours": 178.0}], "figures": ["samples.gif", "missing.png"]},
            seconds=142.3,
        ),
        "ae-conv": _entry(
            {
                "seeds": [0, 1, 2, 3],
                "stalled_seeds": [0, 2],
                "test_mse_per_seed": [0.1229, 0.0758, 0.118, 0.0761],
                "table": [{"metric": "test MSE, mean/std over 4 seeds", "ours": "0.098 ± 0.02"}],
            }
        ),
        "style-transfer": _entry(
            {
                "random_vgg": True,
                "figures": ["stylized.png"],
                "table": [{"metric": "style loss", "ours": 4.4e-6, "seed": 1.8e-5}],
            }
        ),
        "dcgan": _entry(status="failed", error="ValueError: lr must be positive, got -1"),
    }
    return tmp_path, entries


class _Tables(html.parser.HTMLParser):
    """Cells of every table, and every src/href, of a page."""

    def __init__(self):
        super().__init__()
        self.tables, self.links, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def _parse(page) -> _Tables:
    parsed = _Tables()
    parsed.feed(page.read_text())
    return parsed


def test_summary_table_comes_first_with_status_time_headline_and_seed(fake_run):
    workdir, entries = fake_run
    parsed = _parse(report.write_html(workdir, entries))
    header, *rows = parsed.tables[0]
    assert header == ["experiment", "status", "wall time", "headline metric (ours)",
                      "seed's number"]  # fmt: skip
    by_name = {r[0]: r for r in rows}
    assert list(by_name) == list(entries)
    # ae-stacked's headline is its test MSE (`report.HEADLINES`), not its first row
    assert by_name["ae-stacked"] == ["ae-stacked", "ok", "12.5 s", "test MSE: 0.0507", "0.044"]
    assert by_name["gan-mlp"][2] == "2 min 22 s"
    assert by_name["ae-conv"][1] == "ok2 of 4 seeds stalled"  # the note's short form
    assert by_name["style-transfer"][1] == "okrandom VGG19 weights"
    assert by_name["dcgan"][1:] == [
        "failedsee the error", "12.5 s", "ValueError: lr must be positive, got -1", "—"
    ]  # fmt: skip


def test_notes_come_from_the_runs_own_results(fake_run):
    workdir, entries = fake_run
    (ae_conv,) = report_notes.notes_for("ae-conv", entries["ae-conv"])
    assert "seeds 0, 2" in ae_conv[1] and "1: 0.0758; 3: 0.0761" in ae_conv[1]
    (style,) = report_notes.notes_for("style-transfer", entries["style-transfer"])
    assert "random VGG19 weights" in style[1] and STYLE_CMD in style[1]
    trained = {**entries["ae-conv"]["results"], "stalled_seeds": []}
    assert report_notes.notes_for("ae-conv", _entry(trained)) == []
    one_seed = report_notes.notes_for("ae-conv", _entry({"test_mse": 0.1229}))
    assert one_seed[0][0] == "stalled (this seed)" and "--n-seeds 8" in one_seed[0][1]
    assert report_notes.notes_for("ae-conv", _entry({"test_mse": 0.0758})) == []
    assert report_notes.notes_for("style-transfer", _entry({"random_vgg": False})) == []
    page = report.write_html(workdir, entries).read_text()
    assert page.count("class='note'") == 3  # ae-conv, style transfer, the failure
    assert STYLE_CMD in page


def test_note_constants_match_the_modules():
    from jaxunsup import ae_conv, vgg

    assert report_notes.STALL_MSE == ae_conv.STALL_MSE
    assert report_notes.VGG_FILE == vgg.TORCHVISION_FILE


def test_page_needs_no_network_and_links_only_existing_figures(fake_run):
    workdir, entries = fake_run
    page = report.write_html(workdir, entries)
    links = _parse(page).links
    assert "http" not in page.read_text()  # no CDN, font, script or style from elsewhere
    images = [x for x in links if not x.startswith(("#", "data:"))]
    assert sorted(images) == ["../ae-stacked/reconstructions.png", "../gan-mlp/samples.gif",
                              "../style-transfer/stylized.png"]  # fmt: skip
    assert all((page.parent / x).is_file() for x in images)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_report_files_get_the_modes_the_umask_gives(tmp_path, umask, mode):
    """mkstemp's 0600 made index.html unreadable when served; every file `reproduce` writes
    now gets 0666 less the umask, as `open` would give."""
    old = os.umask(umask)
    try:
        out = report.reproduce(tmp_path, "quick", only=("kmeans-circles",))
    finally:
        os.umask(old)
    assert out["failed"] == []
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"index.html", "results.json", "config.json", "kmeans_circles.png"} <= {
        p.name for p in written
    }
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == {
        p.name: oct(mode) for p in written
    }


# --- the page in a real browser ------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium + chromedriver (`.ci/run` installs them)"
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served(fake_run):
    """The fake run's folder on a loopback HTTP server (same origin: the GIF's pixels can be
    read back). Yields (base URL, workdir, entries)."""
    workdir, entries = fake_run
    handler = functools.partial(_QuietHandler, directory=str(workdir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", workdir, entries
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


IMAGES_JS = """return Array.from(document.images).map(
    i => [i.getAttribute('src'), i.complete, i.naturalWidth, i.naturalHeight]);"""


def _gif_shades(driver, seconds: float = 2.0) -> set[int]:
    """The shades the page's GIF shows in screenshots over `seconds` (a canvas would read only
    an animated image's first frame)."""
    import imageio.v3 as iio
    from selenium.webdriver.common.by import By

    gif = driver.find_element(By.CSS_SELECTOR, "img[src$='.gif']")
    shades, start = set(), time.monotonic()
    while time.monotonic() - start < seconds:
        shot = iio.imread(gif.screenshot_as_png)  # [H, W, 3|4]
        shades.add(int(shot[shot.shape[0] // 2, shot.shape[1] // 2, 0]))
    return shades


def _page_images(driver, url) -> tuple[list, list]:
    driver.get(url)
    return driver.execute_script(IMAGES_JS), driver.get_log("browser")


@needs_browser
def test_report_in_a_browser_every_image_decodes_gifs_animate_no_console_errors(served, browser):
    base, workdir, entries = served
    report.write_html(workdir, entries)
    images, log = _page_images(browser, f"{base}/report/index.html")
    assert len(images) == 3
    assert all(done and width > 0 and height > 0 for _, done, width, height in images), images
    assert [e for e in log if e["level"] == "SEVERE"] == []
    assert _gif_shades(browser) == {0, 255}  # it animates: both frames show


@needs_browser
def test_the_browser_check_catches_a_broken_image(served, browser):
    """The same checks fail on a figure that does not decode (the test can fail)."""
    base, workdir, entries = served
    (workdir / "ae-stacked" / "reconstructions.png").write_bytes(b"not a png")
    report.write_html(workdir, entries)
    images, log = _page_images(browser, f"{base}/report/index.html")
    broken = [src for src, _, width, _ in images if width == 0]
    assert broken == ["../ae-stacked/reconstructions.png"]
    (workdir / "gan-mlp" / "samples.gif").unlink()  # linked, then gone: a 404 in the console
    images, log = _page_images(browser, f"{base}/report/index.html")
    assert any("samples.gif" in e["message"] for e in log if e["level"] == "SEVERE"), log


# --- the quick presets' pages (slow: they train) -------------------------------------------


@pytest.mark.slow
def test_ae_conv_quick_page_shows_the_stall_with_its_evidence(tmp_path):
    """Seeds 0-3 of the post's conv AE: some stall, the others train, the page says which."""
    assert report.reproduce(tmp_path, "quick", only=("ae-conv",))["failed"] == []
    results = json.loads((tmp_path / "results.json").read_text())["ae-conv"]["results"]
    stalled = results["stalled_seeds"]
    assert 0 < len(stalled) < len(results["seeds"]) == 4
    per_seed = dict(zip(results["seeds"], results["test_mse_per_seed"], strict=True))
    assert max(v for s, v in per_seed.items() if s not in stalled) < 0.07  # trained
    page = (tmp_path / "report" / "index.html").read_text()
    assert f"{len(stalled)} of 4 seeds stalled (seeds {', '.join(map(str, stalled))})" in page


@pytest.mark.slow
def test_style_transfer_quick_page_names_random_weights_and_the_real_command(tmp_path):
    from jaxunsup import vgg

    assert report.reproduce(tmp_path, "quick", only=("style-transfer",))["failed"] == []
    page = (tmp_path / "report" / "index.html").read_text()
    random_weights = vgg.find_weights() is None
    assert ("comes from random VGG19 weights" in page) == random_weights
    assert (STYLE_CMD in page) == random_weights
