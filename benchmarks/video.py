"""Video throughput: frames/s of `sparse-rcnn predict VIDEO` (plain, --track, --track --save-vis)
beside `sparse-rcnn benchmark` (the model alone, same model, same input size), in one run.

Generates a clip of moving shapes (`sparse-rcnn make-clip`, --frames at --size WxH) into --workdir
unless --video is given, then runs each command as a child process, --rounds times, the commands
interleaved (benchmark, predict, predict --track, ...; then again), so that a machine that slows down
for a while slows every command alike; each round's "x model" is the ratio to that round's
benchmark, and the table gives the medians.

predict's frames/s counts the records written after the first batch's to the last one (the output
file's size is watched every 5 ms): model loading, the first forward and the process's exit are not
counted ("first_record_s", "tail_s"). With --save-vis the last frames are still being encoded after
the last record (at most 2 * batch + 2 of them, in the background thread): "tail_s" holds that.
The benchmark command runs at the input size the detector sees: the frame resized to the model's
test scale. predict runs with --pad (default bucket: each frame alone through the model, so the
benchmark runs at batch 1; --pad largest: a batch of frames as one forward, so the benchmark runs at
the same --batch-size).

    # the trained demo model (R-18, 96x72 input)
    python benchmarks/video.py --weights model_final.pth --frames 150 --size 640x480 --batch-size 4 \
        --threads 2 --rounds 3 --output results/video_demo.json
    # a zoo model: MMDetection's R-50 1x checkpoint on 1280x720 frames (1333x750 input)
    python benchmarks/video.py --model sparse_rcnn_r50_fpn_1x_coco --weights .../ckpt.pth --frames 12 \
        --size 1280x720 --batch-size 2 --threads 2 --rounds 2 --iters 4 --output results/video_r50.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "sparse_rcnn.cli"]
MODES = {
    "predict": [],
    "predict --track": ["--track"],
    "predict --track --save-vis": ["--track", "--save-vis", "{work}/vis.mp4"],
}


def _model_args(model: str | None, weights: str) -> list[str]:
    return (["--model", model] if model else []) + ["--weights", weights]


def run_predict(video: Path, out: Path, model_args: list[str], device: str, batch: int, extra: list[str]) -> dict:
    """Run predict on ``video``; frames/s from the first batch's records to the last record."""
    argv = [*CLI, "predict", str(video), *model_args, "--device", device, "--batch-size", str(batch)]
    argv += ["--output", str(out), *extra]
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    log = out.with_suffix(".log").open("w+")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, text=True)
    sizes: list[tuple[float, int]] = []  # (seconds since start, file size) at each change
    while proc.poll() is None:
        size = out.stat().st_size if out.exists() else 0
        if size and (not sizes or size != sizes[-1][1]):
            sizes.append((time.perf_counter() - start, size))
        time.sleep(0.005)
    total = time.perf_counter() - start
    log.seek(0)
    err = log.read()
    log.close()
    if proc.returncode:
        raise SystemExit(f"predict failed ({proc.returncode}): {err[-2000:]}")
    data = out.read_bytes()
    if not sizes or sizes[-1][1] != len(data):
        sizes.append((total, len(data)))
    ends = [i + 1 for i, b in enumerate(data) if b == 0x0A]  # byte offset after each record

    def lines_at(size: int) -> int:
        return bisect.bisect_right(ends, size)

    first_t, first_n = next(((t, lines_at(s)) for t, s in sizes if lines_at(s) >= batch), (total, len(ends)))
    last_t = next(t for t, s in sizes if lines_at(s) == len(ends))
    frames_per_s = (len(ends) - first_n) / (last_t - first_t) if last_t > first_t else float("nan")
    return {
        "frames": len(ends),
        "frames_per_s": frames_per_s,
        "first_record_s": first_t,
        "last_record_s": last_t,
        "tail_s": total - last_t,
        "total_s": total,
    }


def run_benchmark(model_args: list[str], h: int, w: int, device: str, batch: int, iters: int, work: Path) -> dict:
    out = work / "benchmark.json"
    argv = [*CLI, "benchmark", *model_args, "--size", f"{h}x{w}", "--device", device, "--batch-size", str(batch)]
    argv += ["--iters", str(iters), "--output", str(out)]
    if os.environ.get("OMP_NUM_THREADS"):
        argv += ["--threads", os.environ["OMP_NUM_THREADS"]]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    return {"images_per_s": result["images_per_s"], "latency_ms_median": result.get("latency_ms_median")}


def model_input_size(model: str | None, weights: str, width: int, height: int) -> tuple[int, int]:
    """(H, W) the detector sees for a frame of width x height (resized to its test scale)."""
    import torch

    from sparse_rcnn.data.resize import resize_for_test
    from sparse_rcnn.models import load_model

    detector = load_model(model, weights)
    resized, _ = resize_for_test(torch.zeros(3, height, width, dtype=torch.uint8), detector.test_scale)
    return int(resized.shape[1]), int(resized.shape[2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="checkpoint (the demo's model_final.pth, an MMDetection .pth)")
    p.add_argument("--model", help="named config, for an MMDetection checkpoint (e.g. sparse_rcnn_r50_fpn_1x_coco)")
    p.add_argument("--video", help="a video to use instead of a generated clip")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--size", default="640x480", help="generated clip WxH")
    p.add_argument("--objects", type=int, default=6, help="moving shapes in the generated clip")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--pad", choices=("bucket", "largest"), default="bucket", help="predict --pad (see above)")
    p.add_argument("--threads", type=int, help="OMP/torch threads of every child")
    p.add_argument("--iters", type=int, default=20, help="sparse-rcnn benchmark --iters")
    p.add_argument("--rounds", type=int, default=3, help="times each command runs, interleaved")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated, of: " + ", ".join(MODES))
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
                        "--height", str(height), "--objects", str(args.objects)], check=True)  # fmt: skip
    if args.video:
        from sparse_rcnn.video import probe

        info = probe(video)
        width, height = info.width, info.height
    model_args = _model_args(args.model, args.weights)
    h, w = model_input_size(args.model, args.weights, width, height)
    modes = {m: [a.format(work=work) for a in MODES[m]] for m in args.modes.split(",")}
    rounds = []
    for r in range(args.rounds):
        row: dict = {"load": os.getloadavg()[0]}
        bench_batch = args.batch_size if args.pad == "largest" else 1  # what one forward holds
        row["benchmark"] = run_benchmark(model_args, h, w, args.device, bench_batch, args.iters, work)
        print(f"round {r + 1}: benchmark {row['benchmark']['images_per_s']:.2f} images/s", flush=True)
        for name, extra in modes.items():
            extra = [*extra, "--pad", args.pad]
            row[name] = run_predict(video, work / "out.jsonl", model_args, args.device, args.batch_size, extra)
            row[name]["x_model"] = row[name]["frames_per_s"] / row["benchmark"]["images_per_s"]
            print(f"round {r + 1}: {name} {row[name]['frames_per_s']:.2f} frames/s", flush=True)
        rounds.append(row)
    bench = statistics.median(r["benchmark"]["images_per_s"] for r in rounds)
    summary = {
        name: {
            "frames_per_s": statistics.median(r[name]["frames_per_s"] for r in rounds),
            "x_model": statistics.median(r[name]["x_model"] for r in rounds),
            "frames": rounds[0][name]["frames"],
        }
        for name in modes
    }
    result = {
        "video": str(video),
        "frame_size": [width, height],
        "model_input": [h, w],
        "model": args.model,
        "weights": args.weights,
        "device": args.device,
        "batch_size": args.batch_size,
        "pad": args.pad,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "benchmark_images_per_s": bench,
        "modes": summary,
        "rounds": rounds,
    }
    print(f"{'mode (median of ' + str(args.rounds) + ' rounds)':<34}{'frames/s':>10}{'x model':>9}")
    print(f"{'benchmark (the model alone)':<34}{bench:>10.2f}{1:>9.2f}")
    for name, s in summary.items():
        print(f"{name:<34}{s['frames_per_s']:>10.2f}{s['x_model']:>9.2f}")
    print(json.dumps(result))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
