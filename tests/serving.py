"""Helpers of the service tests: a real uvicorn server over an app in a thread (localhost, a free
port), a detector whose forwards can be held at a gate, images of mixed sizes, and the records
``predict`` writes for them (the reference every answer is compared with)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
import time

import httpx
import numpy as np
import uvicorn
from PIL import Image

from sparse_rcnn import cli

# (h, w) of the test images: with the tiny model's 64x48 test scale and 32-pixel padding they fall
# into three padded shapes: (64, 64) for the first four, (32, 64) for the wide, (64, 32) for the tall.
SIZES = [(50, 70), (48, 64), (70, 50), (45, 66), (30, 90), (25, 80), (90, 30), (80, 25)]


def png_bytes(h: int, w: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def write_images(folder) -> list[str]:
    paths = []
    for i, (h, w) in enumerate(SIZES):
        path = folder / f"img{i}.png"
        path.write_bytes(png_bytes(h, w, i))
        paths.append(str(path))
    return paths


def predict_records(paths: list[str], weights: str, out) -> dict[str, dict]:
    """What ``sparse-rcnn predict`` writes for ``paths`` at batch 1, by path."""
    assert cli.main(["predict", *paths, "--weights", weights, "--output", str(out)]) == 0
    return {r["image"]: r for r in json.loads(out.read_text())}


def post_image(client: httpx.Client, path: str, **params) -> httpx.Response:
    with open(path, "rb") as f:
        return client.post("/v1/detect", files={"image": (path, f.read(), "image/png")}, params=params)


def same_record(got: dict, want: dict, *, exact: bool) -> bool:
    """``exact``: equal as JSON. Otherwise equal up to float rounding in batched CPU kernels: same
    image, size and detections (matched by label), scores within 1e-4 relative and boxes within
    1e-2 pixels. Batch 8 vs 1 on the CPU measured 1.5e-5 relative on scores and 4.6e-3 px on boxes
    (oneDNN convolutions accumulate in another order for another batch size)."""
    if exact:
        return got == want
    if {k: got[k] for k in ("image", "width", "height")} != {k: want[k] for k in ("image", "width", "height")}:
        return False
    if len(got["detections"]) != len(want["detections"]):
        return False
    left = list(got["detections"])
    for d in want["detections"]:
        match = next((g for g in left if _close(g, d)), None)
        if match is None:
            return False
        left.remove(match)
    return True


def _close(a: dict, b: dict) -> bool:
    return (
        a["label"] == b["label"]
        and a["category"] == b["category"]
        and math.isclose(a["score"], b["score"], rel_tol=1e-4, abs_tol=1e-6)
        and all(abs(x - y) <= 1e-2 for x, y in zip(a["box"], b["box"]))
    )


class GatedDetector:
    """A detector whose forwards wait at ``gate`` while it is closed (``close()``); ``entered`` is
    set when a forward reaches it, ``held`` is its number of images; ``fail_next`` makes the next
    forward raise; ``batches`` lists the size of every forward."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.class_names, self.test_scale = detector.class_names, detector.test_scale
        self.size_divisor = detector.size_divisor
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()
        self.fail_next = False
        self.held = 0
        self.batches: list[int] = []
        self.independent: list[bool] = []

    def close(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def detect_resized(self, images, scale_factors, *, independent=False):
        self.held = len(images)
        self.entered.set()
        assert self.gate.wait(120), "the test never opened the gate"
        self.batches.append(len(images))
        self.independent.append(independent)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom\nsecond line")
        return self.detector.detect_resized(images, scale_factors, independent=independent)


@contextlib.contextmanager
def running(app, *, ready: bool = True):
    """``app`` on uvicorn in a thread at 127.0.0.1 (a free port): yields an ``httpx.Client`` on it."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            if ready:
                wait_for(lambda: client.get("/readyz").status_code == 200, "the model to warm up")
            yield client
    finally:
        server.should_exit = True
        thread.join(60)


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def metric(client: httpx.Client, name: str, **headers) -> float:
    """The value of the unlabelled sample ``name`` on ``/metrics``."""
    for line in client.get("/metrics", headers=headers).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not on /metrics")
