"""The page of ``sparse-rcnn serve`` in headless Chromium, as a PNG (docs/serve_page.png).

Serves ``--weights`` in this process (127.0.0.1, a free port), opens ``/`` in Chromium through
Playwright, chooses ``--image``, sets the score slider to ``--thr`` and saves the page.

    python tools/serve_page_screenshot.py --weights model.pth --image photo.png --out docs/serve_page.png
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time

import uvicorn
from playwright.sync_api import sync_playwright

from sparse_rcnn.models import load_model
from sparse_rcnn.serve import create_app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", default="docs/serve_page.png")
    p.add_argument("--thr", default="0.05")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = p.parse_args()
    server = uvicorn.Server(uvicorn.Config(create_app(load_model(weights=args.weights)), port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the server did not start within 60 s")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 760})
            page.goto(url)
            page.set_input_files("#file", args.image)
            page.wait_for_selector("body[data-detections]", timeout=60_000)
            page.eval_on_selector("#thr", f"(e) => {{ e.value = '{args.thr}'; e.dispatchEvent(new Event('input')); }}")
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
