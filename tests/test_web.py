"""The page at / of `cifar-pack serve`, in a real Chromium (Debian's package) driven by Playwright.

The tests know the page only through its contract: `input[type=file]`, `[data-testid=mode]`
(server | browser), `[data-testid=result]` with data-filename/-label/-probability/-mode, and
`[data-testid=result-error]`. One browser per module. Browser mode needs onnxruntime-web from
`npm install --ignore-scripts` in web/ (`.ci/run` does it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime.predictor import Predictor

from .conftest import run_cli
from .helpers.browser import CHROMIUM, CHROMIUM_ARGS
from .helpers.samples import SAMPLES
from .helpers.server import Server

ROOT = Path(__file__).resolve().parents[1]
ORT_WEB = ROOT / "web" / "node_modules" / "onnxruntime-web" / "dist" / "ort.wasm.min.mjs"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the [dev] extra")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.skipif(not ORT_WEB.exists(), reason="run `npm install --ignore-scripts` in web/ first"),
]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server():
    # Each test file starts its own server, configured for what it tests: here the defaults,
    # as a person starts it for the page.
    s = Server()
    yield s
    assert s.stop() == 0


def run_page(browser, server, files, mode, expect):
    """Open the page, pick ``mode``, choose ``files``; the result/result-error elements' attributes."""
    page = browser.new_page()
    try:
        page.goto(f"http://{server.host}/")
        page.select_option("[data-testid=mode]", mode)
        page.set_input_files("input[type=file]", [str(f) for f in files])
        # Selector-based waits and reads only: the page's CSP forbids eval, which Playwright's
        # wait_for_function / evaluate with a string would need.
        selector = f"[data-mode={mode}][data-testid^=result]"
        page.locator(selector).nth(expect - 1).wait_for(timeout=120_000)
        items = {}
        for element in page.query_selector_all(selector):
            item = {
                key: element.get_attribute(f"data-{key}")
                for key in ("testid", "filename", "label", "probability", "mode")
            }
            items[item["filename"]] = item
        return items, page
    except Exception:
        page.close()
        raise


@pytest.mark.parametrize("mode", ["server", "browser"])
def test_the_20_samples_get_the_clis_labels_in_both_modes(browser, server, mode):
    results, page = run_page(browser, server, SAMPLES, mode, 20)
    page.close()
    cli = {Path(r["path"]).name: r for r in json.loads(run_cli("predict", *SAMPLES, "--json").stdout)}
    assert set(results) == set(cli)
    for name, item in results.items():
        assert item["testid"] == "result" and item["label"] == cli[name]["label"], (name, item)
        assert abs(float(item["probability"]) - cli[name]["probability"]) < 1e-3  # JPEG: decoders may differ


@pytest.mark.parametrize("mode", ["server", "browser"])
def test_png_probabilities_match_python_within_1e5(browser, server, tmp_path, mode):
    files = []
    for i, sample in enumerate(SAMPLES[:6]):
        img = Image.open(sample).convert("RGB").resize((45 + 7 * i, 38 + 3 * i), Image.Resampling.BICUBIC)
        if i % 2:  # alpha, composited over white on both sides
            img = img.convert("RGBA")
            img.putalpha(
                Image.fromarray(
                    np.linspace(40, 255, img.size[0] * img.size[1]).reshape(img.size[::-1]).astype(np.uint8)
                )
            )
        files.append(tmp_path / f"{sample.stem}-{i}.png")
        img.save(files[-1])
    results, page = run_page(browser, server, files, mode, len(files))
    page.close()
    expected = Predictor().predict(files)
    for path, want in zip(files, expected):
        got = results[path.name]
        assert got["label"] == want["label"], (path.name, got, want)
        assert abs(float(got["probability"]) - want["probability"]) < 1e-5, (path.name, got, want)


def test_a_non_image_gets_an_error_and_the_others_still_run(browser, server, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image at all")
    results, page = run_page(browser, server, [SAMPLES[0], notes, SAMPLES[1]], "browser", 3)
    page.close()
    assert results["notes.png"]["testid"] == "result-error"
    assert results[SAMPLES[0].name]["testid"] == results[SAMPLES[1].name]["testid"] == "result"


def test_headers_csp_and_wasm_type(server):
    status, headers, body = server.request("GET", "/")
    csp = headers["content-security-policy"]
    assert status == 200 and "default-src 'self'" in csp and "'wasm-unsafe-eval'" in csp and "unsafe-inline" not in csp
    assert b'data-testid="mode"' in body and b"https://" not in body  # nothing from other origins
    status, headers, _ = server.request("GET", "/ort/ort-wasm-simd-threaded.wasm")
    assert status == 200 and headers["content-type"] == "application/wasm"
    assert server.request("GET", "/ort/../../setup.py")[0] == 404


def test_api_key_flow(browser, tmp_path):
    s = Server(env={"CIFAR_PACK_API_KEY": "page-key"})
    page = browser.new_page()
    try:
        page.goto(f"http://{s.host}/")
        page.wait_for_selector("#key-box:not([hidden])", timeout=30_000)  # /model.json answered 401
        page.fill("#api-key", "page-key")
        page.click("#key-save")
        page.set_input_files("input[type=file]", [str(SAMPLES[0])])
        page.wait_for_selector("[data-testid=result][data-mode=server]", timeout=60_000)
        assert page.get_attribute("[data-testid=result]", "data-filename") == SAMPLES[0].name
    finally:
        page.close()
        assert s.stop() == 0


def test_without_the_browser_runtime_the_page_says_how_to_add_it(browser):
    s = Server(env={"CIFAR_PACK_ORT_WEB": "/nonexistent"})
    page = browser.new_page()
    try:
        page.goto(f"http://{s.host}/")
        page.select_option("[data-testid=mode]", "browser")
        page.set_input_files("input[type=file]", [str(SAMPLES[0])])
        page.wait_for_selector("[data-testid=result-error]", timeout=60_000)
        assert "npm install --ignore-scripts" in page.inner_text("[data-testid=result-error]")
        page.select_option("[data-testid=mode]", "server")  # server mode works without it
        page.set_input_files("input[type=file]", [str(SAMPLES[0])])
        page.wait_for_selector("[data-testid=result][data-mode=server]", timeout=60_000)
    finally:
        page.close()
        assert s.stop() == 0


def test_phone_width_and_keyboard_and_the_screenshot(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(f"http://{server.host}/")
        page.keyboard.press("Tab")
        assert page.locator(":focus").get_attribute("id") == "files"  # the first control takes focus
        page.set_input_files("input[type=file]", [str(p) for p in SAMPLES[:4]])
        page.locator("[data-testid=result]").nth(3).wait_for(timeout=60_000)
        for selector in ("main", "#controls", "#drop", "[data-testid=result]"):
            box = page.locator(selector).first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)  # fits a phone
        # Tests write only to temporary folders: `benchmarks/web_page.py --screenshot` refreshes the docs' copy.
        shot = tmp_path / "web-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert Image.open(shot).size[0] == 390
    finally:
        page.close()


@pytest.mark.parametrize("mode", ["server", "browser"])
def test_exif_orientation_is_applied_as_python_does(browser, server, tmp_path, mode):
    """A phone photo stored sideways with EXIF orientation 6: the page must turn it as Pillow does."""
    img = Image.open(SAMPLES[3]).convert("RGB").resize((64, 48), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "sideways.jpg"
    img.save(path, quality=95, exif=exif)
    results, page = run_page(browser, server, [path], mode, 1)
    page.close()
    want = Predictor().predict([path])[0]
    unrotated = Predictor().predict([np.asarray(img)])[0]
    assert want["probability"] != pytest.approx(unrotated["probability"], abs=1e-3)  # the tag matters here
    got = results["sideways.jpg"]
    assert got["label"] == want["label"] and abs(float(got["probability"]) - want["probability"]) < 1e-3
