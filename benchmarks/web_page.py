"""The web page in a real Chromium: per-image time in server vs browser mode, JPEG differences.

    python benchmarks/web_page.py [--json out.json] [--screenshot docs/web-page.png]

Starts `cifar-pack serve` on a free port, opens the page in Debian's Chromium (headless, via
Playwright), chooses the 20 quick-start JPEGs in each mode three times (the first round in
browser mode includes compiling onnxruntime-web's wasm and is reported apart), and reads the
times the page itself shows (`data-ms`): server mode = the /predict round trip, browser mode =
the onnxruntime-web call. Then compares the browser's top-1 probabilities on the JPEGs with the
Python Predictor's (Chromium decodes JPEG itself; Pillow uses libjpeg-turbo). With
--screenshot, also writes the picture the README and docs/serving.md show: the page at phone
width (390x844) after four quick-start photos (tests never write into the checkout).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

from _common import header, save

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    parser.add_argument("--screenshot", default=None, help="also write the phone-width screenshot here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from cifar_pack.runtime.predictor import Predictor

    info = header("web page", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    server = subprocess.Popen(
        [sys.executable, "-m", "cifar_pack", "serve", "--port", "0"], stderr=subprocess.PIPE, text=True
    )
    port = next(int(m.group(1)) for line in server.stderr if (m := re.search(r"127\.0\.0\.1:(\d+)", line)))
    results = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            for mode in ("server", "browser"):
                page.select_option("[data-testid=mode]", mode)
                rounds = []
                for r in range(3):
                    page.set_input_files("input[type=file]", [str(p) for p in SAMPLES])
                    page.locator(f"[data-testid=result][data-mode={mode}]").nth(20 * (r + 1) - 1).wait_for(
                        timeout=180_000
                    )
                    items = page.query_selector_all(f"[data-testid=result][data-mode={mode}]")[:20]  # newest first
                    rounds.append({e.get_attribute("data-filename"): e for e in items})
                    rounds[-1] = {
                        k: (
                            float(e.get_attribute("data-ms")),
                            e.get_attribute("data-label"),
                            float(e.get_attribute("data-probability")),
                        )
                        for k, e in rounds[-1].items()
                    }
                steady = [v[0] for rnd in rounds[1:] for v in rnd.values()]
                results[mode] = {
                    "first_round_ms_median": statistics.median(v[0] for v in rounds[0].values()),
                    "ms_per_image_median": statistics.median(steady),
                    "ms_per_image_p90": sorted(steady)[int(0.9 * len(steady))],
                    "last_round": rounds[-1],
                }
            if args.screenshot:
                screenshot(browser, port, Path(args.screenshot))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    python = {path.name: r for path, r in zip(SAMPLES, Predictor().predict(SAMPLES))}
    diffs = [abs(v[2] - python[k]["probability"]) for k, v in results["browser"]["last_round"].items()]
    agree = sum(v[1] == python[k]["label"] for k, v in results["browser"]["last_round"].items())
    results["jpeg_vs_python"] = {"max_abs_top1_probability_diff": max(diffs), "top1_agreement": f"{agree}/20"}
    for mode in ("server", "browser"):
        r = results[mode]
        print(
            f"{mode}: {r['ms_per_image_median']:.1f} ms per image (median, p90 {r['ms_per_image_p90']:.1f}; "
            f"first round {r['first_round_ms_median']:.1f})"
        )
    print(f"JPEG, browser vs Python: top-1 agreement {agree}/20, max |top-1 probability difference| {max(diffs):.2e}")
    save(args.json, info | {"results": results})


def screenshot(browser, port: int, path: Path) -> None:
    """The page at phone width after four quick-start photos in server mode, as one PNG."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"http://127.0.0.1:{port}/")
    page.set_input_files("input[type=file]", [str(p) for p in SAMPLES[:4]])
    page.locator("[data-testid=result]").nth(3).wait_for(timeout=60_000)
    page.screenshot(path=str(path), full_page=True)
    page.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
