"""Folder prediction at scale: throughput and memory of `sparse-rcnn predict DIR` over thousands of images.

Writes N random-noise PNGs (sizes varying between --min-side and --max-side) and a small random
Sparse R-CNN checkpoint into --workdir (reused if present), then runs

    sparse-rcnn predict DIR --weights tiny.pth --workers W --batch-size B --output out.json

as a child process and samples, every --interval seconds, the resident memory (VmRSS from /proc;
Linux only) of the predict process and of its decoding workers, and the number of records
written so far (one line per image in the output). Prints a table of the samples and one JSON
summary: images/s in the steady state (from the first record written to the last), and the RSS
at the start (first record), middle and end of the run. Flat memory means end ~= start.

    python benchmarks/predict_folder.py [--images 3000] [--workers 2] [--batch-size 8]
        [--scale 320x256] [--runtime torch|onnxruntime|openvino] [--threads 2] [--output results/predict_folder.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def make_images(folder: Path, n: int, min_side: int, max_side: int, seed: int = 0) -> None:
    """Random-noise PNGs; skipped if the folder already holds n of them."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == n:
        return
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = rng.integers(min_side, max_side + 1, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:07d}.png", compress_level=1)


def make_model(workdir: Path, scale: tuple[int, int]) -> tuple[Path, Path]:
    """A small random Sparse R-CNN (resnet18, 64-channel FPN, 16 proposals, 2 stages, the given
    test scale) as a checkpoint, and its ONNX export."""
    import torch

    from sparse_rcnn.checkpoints import model_checkpoint, save_checkpoint
    from sparse_rcnn.deploy import export_onnx
    from sparse_rcnn.models import build_model
    from tiny import tiny_config

    ckpt, onnx_path = workdir / f"small_{scale[0]}x{scale[1]}.pth", workdir / f"small_{scale[0]}x{scale[1]}.onnx"
    if not ckpt.exists():
        torch.manual_seed(0)
        cfg = tiny_config(
            fpn_channels=64, num_proposals=16, ffn_dim=128, dynamic_dim=16, num_classes=5, test_scale=scale
        )
        model = build_model(cfg.model)
        save_checkpoint(model_checkpoint(model, cfg), ckpt)
        export_onnx(model, onnx_path, dynamic=True)
    return ckpt, onnx_path


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--min-side", type=int, default=96)
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runtime", choices=("torch", "onnxruntime", "openvino"), default="torch")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the predict process")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--scale", default="320x256", help="test scale of the model, LONGxSHORT")
    parser.add_argument("--workdir", default=os.path.expanduser("~/.cache/sparse-rcnn-bench/predict_folder"))
    parser.add_argument("--output", help="also write the summary JSON here")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    folder = workdir / f"images_{args.images}"
    t0 = time.perf_counter()
    make_images(folder, args.images, args.min_side, args.max_side)
    ckpt, onnx_path = make_model(workdir, tuple(int(v) for v in args.scale.split("x")))
    print(f"data ready in {time.perf_counter() - t0:.1f}s: {args.images} images in {folder}", file=sys.stderr)

    out = workdir / "out.json"
    out.unlink(missing_ok=True)
    model_args = (
        ["--weights", str(ckpt)] if args.runtime == "torch" else ["--onnx", str(onnx_path), "--runtime", args.runtime]
    )
    cmd = [
        sys.executable,
        "-m",
        "sparse_rcnn.cli",
        "predict",
        str(folder),
        *model_args,
        "--workers",
        str(args.workers),
        "--batch-size",
        str(args.batch_size),
        "--output",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    samples = []  # (seconds, records written, main RSS MiB, workers RSS MiB)
    while proc.poll() is None:
        kids = children(proc.pid)
        samples.append(
            (
                time.perf_counter() - start,
                max(count_lines(out) - 1, 0),
                rss_kib(proc.pid) / 1024,
                sum(rss_kib(k) for k in kids) / 1024,
            )
        )
        time.sleep(args.interval)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"predict failed with status {proc.returncode}", file=sys.stderr)
        return 1
    written = len(json.loads(out.read_text()))
    running = [s for s in samples if s[1] > 0 and s[1] < args.images]  # from the first record on
    if len(running) < 3:
        print("run too short to sample; use more --images", file=sys.stderr)
        return 1
    first, last = running[0], running[-1]
    mid = running[len(running) // 2]
    print(f"{'t (s)':>7} {'images':>8} {'main RSS MiB':>13} {'workers RSS MiB':>16}")
    for s in samples[:: max(1, len(samples) // 20)]:
        print(f"{s[0]:>7.1f} {s[1]:>8} {s[2]:>13.1f} {s[3]:>16.1f}")
    summary = {
        "images": args.images,
        "written": written,
        "runtime": args.runtime,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "wall_s": round(wall, 1),
        "images_per_s_overall": round(args.images / wall, 1),
        "images_per_s_steady": round((last[1] - first[1]) / (last[0] - first[0]), 1),
        "rss_main_mib": {
            "start": round(first[2], 1),
            "middle": round(mid[2], 1),
            "end": round(last[2], 1),
            "max": round(max(s[2] for s in running), 1),
        },
        # Workers exit once the last batch is decoded: their "end" is the last sample with them alive.
        "rss_workers_mib": {
            "start": round(first[3], 1),
            "middle": round(mid[3], 1),
            "end": round([s for s in running if s[3] > 0][-1][3], 1),
        },
        "image_sides": [args.min_side, args.max_side],
        "test_scale": args.scale,
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "command": " ".join(cmd[1:]),
    }
    print(json.dumps(summary, indent=2))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
