"""Video throughput: frames/s of `sparse-rcnn predict VIDEO` (plain, --track, --track --save-vis)
beside `sparse-rcnn benchmark` (the model alone, same model, same input size), in one run.

Generates a clip of moving shapes (`sparse-rcnn make-clip`, --frames at --size WxH) into --workdir
unless --video is given, then times each command as a child process (wall clock from start to
exit, minus the time to the first frame record: model loading and the first forward are not
counted; see "first_record_s") and prints one table and one JSON object. The benchmark command runs
at the input size the detector sees: the frame resized to the model's test scale.

    python benchmarks/video.py --weights MODEL.pth [--frames 300] [--size 640x480] [--device cpu]
        [--batch-size 4] [--threads 2] [--output results/video.json]
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

CLI = [sys.executable, "-m", "sparse_rcnn.cli"]


def run_predict(video: Path, out: Path, weights: str, device: str, batch: int, extra: list[str]) -> dict:
    """Run predict on ``video`` and time it: total seconds, seconds to the first record, frames."""
    argv = [*CLI, "predict", str(video), "--weights", weights, "--device", device, "--batch-size", str(batch)]
    argv += ["--output", str(out), *extra]
    out.unlink(missing_ok=True)  # the first record is the first byte of a fresh file
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and out.exists() and out.stat().st_size > 0:
            first = time.perf_counter() - start
        time.sleep(0.01)
    total = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"predict failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    frames = len(out.read_text().splitlines())
    first = first if first is not None else total
    steady = max(total - first, 1e-9)
    return {"frames": frames, "total_s": total, "first_record_s": first, "frames_per_s": (frames - 1) / steady}


def model_input_size(weights: str, width: int, height: int) -> tuple[int, int]:
    """(H, W) the detector sees for a frame of width x height (resized to its test scale)."""
    import torch

    from sparse_rcnn.data.resize import resize_for_test
    from sparse_rcnn.models import load_model

    model = load_model(weights=weights)
    resized, _ = resize_for_test(torch.zeros(3, height, width, dtype=torch.uint8), model.test_scale)
    return int(resized.shape[1]), int(resized.shape[2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="checkpoint (e.g. the demo's model_final.pth)")
    p.add_argument("--video", help="a video to use instead of a generated clip")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="640x480", help="generated clip WxH")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, help="OMP/torch threads of every child")
    p.add_argument("--iters", type=int, default=20, help="sparse-rcnn benchmark --iters")
    p.add_argument("--workdir", default="/tmp/sparse-rcnn-video-bench")
    p.add_argument("--output", help="write the JSON here too")
    args = p.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.lower().split("x"))
    video = Path(args.video) if args.video else work / f"clip_{width}x{height}_{args.frames}.mp4"
    if not video.exists():
        subprocess.run([*CLI, "make-clip", str(video), "--frames", str(args.frames), "--width", str(width),
                        "--height", str(height), "--objects", "6"], check=True)  # fmt: skip
    if args.video:
        from sparse_rcnn.video import probe

        info = probe(video)
        width, height = info.width, info.height
    h, w = model_input_size(args.weights, width, height)
    rows = {}
    modes = {
        "predict": [],
        "predict --track": ["--track"],
        "predict --track --save-vis": ["--track", "--save-vis", str(work / "vis.mp4")],
    }
    for name, extra in modes.items():
        rows[name] = run_predict(video, work / "out.jsonl", args.weights, args.device, args.batch_size, extra)
    bench_out = work / "benchmark.json"
    subprocess.run([*CLI, "benchmark", "--weights", args.weights, "--size", f"{h}x{w}", "--device", args.device,
                    "--batch-size", str(args.batch_size), "--iters", str(args.iters), "--output", str(bench_out)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    bench = json.loads(bench_out.read_text())
    result = {
        "video": str(video),
        "frame_size": [width, height],
        "model_input": [h, w],
        "device": args.device,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "modes": rows,
        "benchmark_images_per_s": bench.get("images_per_s"),
    }
    print(f"{'mode':<30}{'frames/s':>10}{'frames':>8}{'first record s':>16}")
    for name, r in rows.items():
        print(f"{name:<30}{r['frames_per_s']:>10.2f}{r['frames']:>8}{r['first_record_s']:>16.2f}")
    print(f"{'benchmark (model only)':<30}{result['benchmark_images_per_s']:>10.2f}")
    print(json.dumps(result))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
