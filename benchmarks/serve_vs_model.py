"""The service against the model alone, interleaved in one process (BENCHMARKS.md section 6).

Each round times one forward of the model in the main thread (as ``sparse-rcnn benchmark`` does:
``model(images)`` under ``no_grad``) and then ``--clients`` concurrent requests to the service
(``create_app`` on uvicorn in a thread of this process, ``--max-batch``) posting the same image as
a PNG; it prints wall seconds, minor page faults and kernel CPU seconds per image for each, and the
throughput ratio service / model alone from the medians. Interleaving makes the load of anything
else on the machine fall on both sides alike; page faults do not depend on that load at all.
Random weights (no download); ``--malloc`` picks the allocator settings:

- ``keep-freed``: ``ops.keep_freed_memory()``, what the ``sparse-rcnn`` command applies;
- ``heap-only``: its settings before the arena limit (freed memory kept in the main arena only);
- ``system``: glibc's defaults.

    python benchmarks/serve_vs_model.py --rounds 2 --malloc keep-freed
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import io
import resource
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import torch
import uvicorn
from PIL import Image

from sparse_rcnn.config import load_config
from sparse_rcnn.engine.benchmark import synthetic_inputs
from sparse_rcnn.models import build_model
from sparse_rcnn.ops import keep_freed_memory
from sparse_rcnn.serve import ServeSettings, create_app


def set_malloc(mode: str) -> None:
    if mode == "keep-freed":
        assert keep_freed_memory(), "keep_freed_memory() did not apply (not glibc, or SPARSE_RCNN_MALLOC=system)"
    elif mode == "heap-only":
        mallopt = ctypes.CDLL(None).mallopt
        assert mallopt(-4, 0) == 1 and mallopt(-1, -1) == 1  # M_MMAP_MAX 0, M_TRIM_THRESHOLD -1


def measured(fn, n: int) -> tuple[float, float, float]:
    """(wall s, minor page faults, kernel CPU s) per image of ``fn()``, which handles ``n`` images."""
    u0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    wall, u1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return wall / n, (u1.ru_minflt - u0.ru_minflt) / n, (u1.ru_stime - u0.ru_stime) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sparse_rcnn_r50_fpn_1x_coco")
    p.add_argument("--size", default="800x1333", help="HxW of the image (sent as is; the test scale's size)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--max-batch", type=int, default=4)
    p.add_argument("--malloc", choices=("keep-freed", "heap-only", "system"), default="keep-freed")
    args = p.parse_args()
    set_malloc(args.malloc)
    h, w = (int(v) for v in args.size.split("x"))
    cfg = load_config(args.model, [])
    model = build_model(dataclasses.replace(cfg.model, pretrained_backbone=False)).eval()
    images, _ = synthetic_inputs(1, (h, w))
    buf = io.BytesIO()
    Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(buf, "PNG")
    png = buf.getvalue()

    def alone() -> None:
        with torch.no_grad():
            model(images)

    app = create_app(model, ServeSettings(max_batch=args.max_batch, timeout_s=3600))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=3600) as client, ThreadPoolExecutor(8) as pool:

        def post(_: int) -> None:
            r = client.post("/v1/detect", files={"image": ("x.png", png, "image/png")})
            assert r.status_code == 200, r.text

        def service() -> None:
            list(pool.map(post, range(args.clients)))

        while client.get("/readyz").status_code != 200:
            time.sleep(0.1)
        alone(), post(0)  # first calls: allocations, lazy initialisation
        results: dict[str, list[tuple[float, float, float]]] = {"model alone": [], "service": []}
        for r in range(args.rounds):
            for name, fn, n in (("model alone", alone, 1), ("service", service, args.clients)):
                results[name].append(measured(fn, n))
                print(
                    f"round {r} {name:11s} per image: wall %.2f s, page faults %d, kernel CPU %.2f s"
                    % results[name][-1]
                )
        batches = [x for x in client.get("/metrics").text.splitlines() if x.startswith("sparse_rcnn_batch_size_")]
    server.should_exit = True
    medians = {k: statistics.median(x[0] for x in v) for k, v in results.items()}
    print(f"malloc {args.malloc}: throughput service / model alone = {medians['model alone'] / medians['service']:.2f}")
    print(" ".join(x for x in batches if "_count" in x or "_sum" in x))


if __name__ == "__main__":
    main()
