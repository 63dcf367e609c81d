"""The GPU figures of BENCHMARKS.md section 4 in one command: ours and MMDetection's, alternately.

On a CUDA GPU, at 800x1333 (batch 1 and 8), it times our detector in each inference variant
(eager fp32, eager TF32, eager fp16, ``torch.compile``, CUDA graphs via compile's
``reduce-overhead`` mode in fp32 and fp16) and a training step (batch 2, fp32), and MMDetection
3.3's own Sparse R-CNN (``benchmarks/mmdet_bench.py`` in the oracle environment: fp32, TF32,
fp16 autocast, training step), MMDetection's run right before ours in every round. Both use the
reference R-50 checkpoint when it is there (random weights otherwise; the time does not depend on
them) and the same synthetic inputs (``sparse_rcnn.engine.benchmark``). Writes one JSON file.

    python benchmarks/gpu.py [--device cuda] [--rounds 2] [--iters 20] [--out benchmarks/results/gpu.json]

``--device cpu --quick`` runs it end to end on the CPU in about a minute (64x96 input, batch 2, one
iteration, compile variants with the ``eager`` backend: the graph capture without inductor's code
generation; fp16 variants in bf16, as CPU fp16 convolutions crawl), so that CI keeps it working;
MMDetection is skipped, with the reason recorded, when its environment is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import os.path as osp
import subprocess
import sys
import time

import torch

HERE = osp.dirname(osp.abspath(__file__))
ORACLE_DIR = os.environ.get("ORACLE_DIR", osp.expanduser("~/.cache/sparse-rcnn-oracle"))
ORACLE_PY = osp.join(ORACLE_DIR, "venv", "bin", "python")
CONFIG = "sparse_rcnn_r50_fpn_1x_coco"
CKPT = osp.join(ORACLE_DIR, "ref", CONFIG, "ckpt.pth")


@dataclasses.dataclass(frozen=True)
class Variant:
    dtype: str = "fp32"  # optimize_for_inference(dtype=...): fp16 = fp16 convolutions + head autocast
    tf32: bool = False
    compile: str | None = None  # compile_detect mode
    train: bool = False
    mmdet: tuple[str, ...] = ()  # MMDetection's counterpart (mmdet_bench.py flags)


VARIANTS = {
    "eager-fp32": Variant(),
    "eager-tf32": Variant(tf32=True, mmdet=("--tf32",)),
    "eager-fp16": Variant(dtype="fp16", mmdet=("--fp16",)),
    "compile": Variant(compile="default"),  # what `--compile` does: dynamic shapes
    "cudagraphs": Variant(compile="reduce-overhead"),
    "cudagraphs-fp16": Variant(dtype="fp16", compile="reduce-overhead", mmdet=("--fp16",)),
    "train": Variant(train=True, mmdet=("--train",)),
}


def mmdet_missing() -> str | None:
    """Why MMDetection cannot run here, or None."""
    for path, what in ((ORACLE_PY, "the oracle environment"), (CKPT, "the reference checkpoint")):
        if not osp.exists(path):
            return f"{what} is absent ({path}); see ../shared/mmdet-reference/README.md"
    return None


def run_mmdet(variant: Variant, batch: int, size: tuple[int, int], iters: int, warmup: int, device: str) -> dict:
    cmd = [
        ORACLE_PY,
        osp.join(HERE, "mmdet_bench.py"),
        "--device",
        device,
        "--batch-size",
        str(batch),
        "--size",
        f"{size[0]}x{size[1]}",
        "--iters",
        str(iters),
        "--warmup",
        str(warmup),
        *variant.mmdet,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_ours(
    variant: Variant, batch: int, size: tuple[int, int], iters: int, warmup: int, device: str, compile_backend: str
) -> dict:
    from sparse_rcnn.config import load_config
    from sparse_rcnn.engine import run_benchmark
    from sparse_rcnn.engine.benchmark import synthetic_inputs
    from sparse_rcnn.models import build_model, load_model
    from sparse_rcnn.ops import compile_detect, optimize_for_inference

    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = variant.tf32
        torch.backends.cudnn.allow_tf32 = variant.tf32
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    if osp.exists(CKPT):
        model = load_model(CONFIG, CKPT, device=device)
    else:
        model = build_model(dataclasses.replace(load_config(CONFIG).model, pretrained_backbone=False)).to(device)
    if size != (800, 1333):  # test images are resized to the test scale: keep them at this size
        model.test_scale = (max(size), min(size))
    first_call_s = None
    dtype = variant.dtype
    if dtype == "fp16" and device == "cpu":  # CPU fp16 convolutions crawl (minutes at 64x96): the run-through uses bf16
        dtype = "bf16"
    if not variant.train:
        optimize_for_inference(model, dtype=dtype)
        if variant.compile:
            compile_detect(model, mode=variant.compile, backend=compile_backend)
            images, _ = synthetic_inputs(batch, size, model.num_classes)
            t0 = time.perf_counter()
            with torch.no_grad():  # compiles (and, for CUDA graphs, warms up) outside the timed runs
                model([img.to(device) for img in images])
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            first_call_s = time.perf_counter() - t0
    result = run_benchmark(
        model, size=size, batch_size=batch, iters=iters, warmup=warmup, train=variant.train, device=device, dtype=dtype
    )
    result.update(
        tf32=variant.tf32 if device.startswith("cuda") else None,
        compile_mode=variant.compile,
        compile_backend=compile_backend if variant.compile else None,
        first_call_s=first_call_s,
        weights=CKPT if osp.exists(CKPT) else None,
    )
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (the figures) or cpu (a check that it runs)")
    ap.add_argument("--quick", action="store_true", help="tiny input, one iteration: a run-through, not a measurement")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--batch-sizes", type=int, nargs="+", help="inference batch sizes (default: 1 8; quick: 2)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20, help="timed iterations per run (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations first (CUDA graphs record on the 2nd)")
    ap.add_argument("--no-mmdet", action="store_true", help="time ours only")
    ap.add_argument("--out", default=osp.join(HERE, "results", "gpu.json"))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"--device {args.device}: no CUDA GPU here; `--device cpu --quick` checks that the script runs",
            file=sys.stderr,
        )
        return 2
    size = (64, 96) if args.quick else (800, 1333)
    batches = args.batch_sizes or ([2] if args.quick else [1, 8])
    iters, warmup, rounds = (1, 1, 1) if args.quick else (args.iters, args.warmup, args.rounds)
    # on the CPU in quick mode: dynamo's capture only (inductor's C++ build of R-50 takes minutes)
    compile_backend = "eager" if args.quick and args.device == "cpu" else "inductor"
    skipped = "--no-mmdet" if args.no_mmdet else mmdet_missing()
    runs, pairs = [], {}
    for r in range(rounds):
        mmdet_done: dict[tuple, dict] = {}
        for name in args.variants:
            variant = VARIANTS[name]
            for batch in [2] if variant.train else batches:
                theirs = None
                if skipped is None:
                    key = (variant.mmdet, batch)
                    if key not in mmdet_done:  # MMDetection right before ours, once per round and setting
                        mmdet_done[key] = run_mmdet(variant, batch, size, iters, warmup, args.device)
                        runs.append(
                            {**mmdet_done[key], "round": r, "variant": f"mmdet {' '.join(variant.mmdet) or 'fp32'}"}
                        )
                    theirs = mmdet_done[key]
                ours = run_ours(variant, batch, size, iters, warmup, args.device, compile_backend)
                runs.append({**ours, "round": r, "variant": name})
                pair = pairs.setdefault(f"{name} batch {batch}", {"ours_ms": [], "mmdet_ms": []})
                pair["ours_ms"].append(ours["latency_ms_median"])
                if theirs is not None:
                    pair["mmdet_ms"].append(theirs["latency_ms_median"])
                print(
                    f"round {r} {name:<16} batch {batch}: ours {ours['latency_ms_median']:8.1f} ms"
                    + (f", mmdet {theirs['latency_ms_median']:8.1f} ms" if theirs else ""),
                    flush=True,
                )
    summary = {}
    for key, pair in pairs.items():
        ours_ms = sorted(pair["ours_ms"])[len(pair["ours_ms"]) // 2]
        entry = {"ours_ms": ours_ms}
        if pair["mmdet_ms"]:
            mmdet_ms = sorted(pair["mmdet_ms"])[len(pair["mmdet_ms"]) // 2]
            entry.update(mmdet_ms=mmdet_ms, speedup=mmdet_ms / ours_ms)
        summary[key] = entry
    report = {
        "device": runs[-1]["device"] if runs else args.device,
        "quick": args.quick,
        "size": list(size),
        "batch_sizes": batches,
        "rounds": rounds,
        "iters": iters,
        "warmup": warmup,
        "torch": torch.__version__,
        "compile_backend": compile_backend,
        "mmdet_skipped": skipped,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": summary,
        "runs": runs,
    }
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({"summary": summary, "mmdet_skipped": skipped, "out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
