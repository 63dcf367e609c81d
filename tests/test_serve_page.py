"""The page at ``/`` in headless Chromium: an image is chosen, the boxes are drawn, the score slider
filters them live, and class names from the checkpoint are shown as text, never run as HTML.
Skipped where Playwright or a Chromium is not installed."""

import os
import shutil

import pytest

from serving import png_bytes, running
from sparse_rcnn.models import load_model
from sparse_rcnn.serve import ServeSettings, create_app
from tiny import save_tiny_checkpoint

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM, reason="no chromium on PATH (or $CHROMIUM)")]
EVIL = "<img src=x onerror=window.pwned=1>"


def test_page_detects_draws_and_filters(tmp_path):
    weights = save_tiny_checkpoint(tmp_path / "evil.pth", [EVIL, "dog", "bird"], test_scale=(64, 48))
    image = tmp_path / "photo.png"
    image.write_bytes(png_bytes(120, 160, 3))
    with running(create_app(load_model(weights=str(weights)))) as client:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(r.url))
            page.goto(str(client.base_url))
            page.set_input_files("#file", str(image))
            page.wait_for_selector("body[data-detections]", timeout=60_000)
            total = int(page.get_attribute("body", "data-detections"))
            assert total > 0
            # the 160 x 120 image is drawn enlarged 4 times
            assert page.evaluate("[view.width, view.height, view.dataset.scale]") == [640, 480, "4"]

            def rows_at(value: str) -> int:
                page.eval_on_selector("#thr", f"(e) => {{ e.value = '{value}'; e.dispatchEvent(new Event('input')); }}")
                return page.locator("#rows tr").count()

            assert rows_at("0") == total
            assert rows_at("1") == 0
            scores = sorted(float(s) for s in page.locator("#rows td:nth-child(3)").all_inner_texts()) or None
            assert scores is None  # nothing at >= 1
            rows_at("0")
            middle = sorted(float(s) for s in page.locator("#rows td:nth-child(3)").all_inner_texts())[total // 2]
            assert 0 < rows_at(f"{middle:.2f}") < total
            assert "of %d detections" % total in page.inner_text("#status")
            # the checkpoint's class name is shown as text: no element made of it, nothing run
            rows_at("0")
            assert EVIL in page.inner_text("#rows")
            assert page.evaluate("window.pwned === undefined") and page.locator("#rows img").count() == 0
            assert not errors, errors
            browser.close()


def test_page_asks_for_the_api_key_where_one_is_set(tmp_path):
    weights = save_tiny_checkpoint(tmp_path / "m.pth", ["cat", "dog", "bird"], test_scale=(64, 48))
    images = [tmp_path / "photo.png", tmp_path / "other.png"]  # a browser signals no change for the same file
    for i, image in enumerate(images):
        image.write_bytes(png_bytes(120, 160, i))
    with running(create_app(load_model(weights=str(weights)), ServeSettings(api_key="s3cret"))) as client:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(str(client.base_url))
            page.wait_for_selector("#keyrow:not([hidden])", timeout=30_000)  # /v1/info said 401
            page.set_input_files("#file", str(images[0]))
            page.wait_for_selector("#status.error", timeout=60_000)
            assert page.inner_text("#status").startswith("401")
            page.fill("#key", "s3cret")
            page.set_input_files("#file", str(images[1]))
            page.wait_for_selector("body[data-detections]", timeout=60_000)
            browser.close()
