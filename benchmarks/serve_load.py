"""Load on a running ``sparse-rcnn serve``: N concurrent clients for T seconds or a count of requests.

Each client posts images (``--images``, cycled; default: generated 640x480 and 480x640 PNGs) to
``/v1/detect`` one after the other. Prints requests/s, p50 / p95 / p99 latency, the error count by
status, and the server's resident memory before and after (from ``/proc/PID`` with ``--pid``, else
from ``/metrics``' ``process_resident_memory_bytes``; with several Ray replicas that is one of them).
Bounded: it stops at ``--requests`` or after ``--duration`` seconds, whichever comes first, and
talks to localhost only.

    sparse-rcnn serve --weights model.pth &
    python benchmarks/serve_load.py --clients 8 --duration 30
    python benchmarks/serve_load.py --clients 4 --requests 20 --images a.jpg b.jpg
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

LOCAL = {"127.0.0.1", "localhost", "::1"}


def generated_images() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate([(480, 640), (640, 480), (480, 640), (360, 640)]):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append((f"generated{i}.png", buf.getvalue()))
    return out


def rss_mb(client: httpx.Client, pid: int | None) -> float | None:
    if pid:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1]) / 2**20
    return None


def run(args: argparse.Namespace) -> None:
    host = urlparse(args.url).hostname
    if host not in LOCAL:
        raise SystemExit(f"--url {args.url}: this load generator talks to localhost only")
    images = [(Path(p).name, Path(p).read_bytes()) for p in args.images] or generated_images()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    issued = iter(range(args.requests))
    with httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout) as client:
        if client.get("/readyz").status_code != 200:
            raise SystemExit(f"{args.url} is not ready (GET /readyz)")
        before = rss_mb(client, args.pid)
        stop_at = time.monotonic() + args.duration

        def worker() -> None:
            while time.monotonic() < stop_at:
                with lock:
                    n = next(issued, None)
                if n is None:
                    return
                name, data = images[n % len(images)]
                start = time.perf_counter()
                try:
                    status = client.post("/v1/detect", files={"image": (name, data, "image/png")}).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        latencies.append(elapsed)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.duration + args.timeout + 5)
        wall = time.perf_counter() - began
        after = rss_mb(client, args.pid)
    done = sum(statuses.values())
    ms = np.percentile(np.array(latencies) * 1000, [50, 95, 99]) if latencies else [float("nan")] * 3
    errors = {k: v for k, v in statuses.items() if k != 200}
    print(f"clients {args.clients}, requests {done} in {wall:.1f} s: {done / wall:.2f} requests/s")
    print(f"latency ms (answered): p50 {ms[0]:.1f}  p95 {ms[1]:.1f}  p99 {ms[2]:.1f}")
    print(f"errors: {sum(errors.values())} {dict(errors) if errors else ''}".rstrip())
    shown = "n/a" if before is None else f"{before:.0f} MB -> {after:.0f} MB"
    print(f"server RSS: {shown}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=30.0, help="seconds at most")
    p.add_argument("--requests", type=int, default=100_000, help="requests at most")
    p.add_argument("--images", nargs="*", default=[], help="image files to send (default: generated PNGs)")
    p.add_argument("--api-key")
    p.add_argument("--pid", type=int, help="the server's process id, for its RSS (default: from /metrics)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    run(p.parse_args())


if __name__ == "__main__":
    main()
