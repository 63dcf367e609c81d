"""sparse-rcnn vs MMDetection on the same machine, ALTERNATING runs, printing ratios.

Each round runs, one after the other (``--pair-each``: MMDetection again before every mode),
MMDetection (``benchmarks/mmdet_bench.py`` in the oracle venv) and ``sparse-rcnn benchmark`` in each
requested mode, every run in a fresh process on the
reference R-50 checkpoint and the same synthetic 800x1333 input (batch 1 for inference, batch 2 for
training). Ratios are taken within a round (neighbouring runs see the same machine load); the
summary reports the median ratio over rounds. One JSON line per run and a summary are written.
The ``*-int8`` modes time the int8 graph given as ``--int8-onnx`` (``sparse-rcnn quantize`` of the export).
The ``onnxruntime-*`` / ``openvino-*`` modes time the exported graph (``sparse-rcnn benchmark --onnx
... --runtime ...``): the reference checkpoint is exported once per run (``--dynamic``, so one file
serves every ``--batch``) into a temporary folder, or read from ``--onnx`` when given.
``--batch 1 4`` times every inference mode (and MMDetection) at each batch size.
``sparse-rcnn`` sets glibc malloc to keep freed memory (``sparse_rcnn/allocator.py``);
``--mmdet-malloc system keep-freed`` times MMDetection both as shipped and with the same setting.

    python benchmarks/side_by_side.py [--rounds 3] [--modes fp32 bf16 train] [--iters 5]
        [--threads 2] [--mmdet-malloc system keep-freed] [--out benchmarks/results/side_by_side.jsonl]
    python benchmarks/side_by_side.py --modes fp32 fp32-winograd bf16 onnxruntime-fp32 openvino-fp32 \
        openvino-bf16 --batch 1 4
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

ORACLE_DIR = os.environ.get("ORACLE_DIR", osp.expanduser("~/.cache/sparse-rcnn-oracle"))
ORACLE_PY = osp.join(ORACLE_DIR, "venv", "bin", "python")
HERE = osp.dirname(osp.abspath(__file__))
CONFIG = "sparse_rcnn_r50_fpn_1x_coco"
CKPT = osp.join(ORACLE_DIR, "ref", CONFIG, "ckpt.pth")

# our mode -> (extra `sparse-rcnn benchmark` args, MMDetection mode it is compared with)
MODES = {
    "fp32": ([], "inference"),
    "fp32-cl": (["--channels-last"], "inference"),
    "fp32-cl-fold": (["--channels-last", "--fold-bn"], "inference"),
    "fp32-winograd": (["--winograd"], "inference"),
    "fp32-winograd-fold": (["--winograd", "--fold-bn"], "inference"),
    "bf16": (["--dtype", "bf16", "--channels-last"], "inference"),
    "bf16-fold": (["--dtype", "bf16", "--channels-last", "--fold-bn"], "inference"),
    "bf16-fpn": (["--dtype", "bf16", "--scope", "fpn", "--channels-last"], "inference"),
    # torch.compile of model.detect (inductor); the compilation happens in the untimed warm-up run
    "compile": (["--compile"], "inference"),
    "train": (["--train"], "train"),
    # the exported graph ({onnx}: the file exported at the start of the run)
    "onnxruntime-fp32": (["--onnx", "{onnx}", "--runtime", "onnxruntime"], "inference"),
    "openvino-fp32": (["--onnx", "{onnx}", "--runtime", "openvino"], "inference"),
    "openvino-bf16": (["--onnx", "{onnx}", "--runtime", "openvino", "--dtype", "bf16"], "inference"),
    # the int8 graph of `sparse-rcnn quantize` ({int8}: --int8-onnx)
    "onnxruntime-int8": (["--onnx", "{int8}", "--runtime", "onnxruntime"], "inference"),
    "openvino-int8": (["--onnx", "{int8}", "--runtime", "openvino"], "inference"),
}


# glibc environment variables equivalent to sparse_rcnn.ops.allocator.keep_freed_memory()
MALLOC_ENV = {
    "system": {},
    "keep-freed": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**63)},
}


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["fp32", "bf16", "train"], choices=list(MODES))
    ap.add_argument("--iters", type=int, default=5, help="timed inference iterations per run")
    ap.add_argument("--train-iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pair-each", action="store_true", help="re-run MMDetection right before every mode")
    ap.add_argument(
        "--mmdet-malloc",
        nargs="+",
        default=["system"],
        choices=list(MALLOC_ENV),
        help="run MMDetection with glibc's default malloc (as its users do) and/or with the "
        "keep-freed setting `sparse-rcnn` applies to itself (sparse_rcnn/allocator.py)",
    )
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="inference batch sizes (training: batch 2)")
    ap.add_argument("--size", default="800x1333", help="HxW of the synthetic images (smaller only to try the script)")
    ap.add_argument("--onnx", help="the exported reference model to time (default: exported once at the start)")
    ap.add_argument("--int8-onnx", help="the int8 graph the *-int8 modes time (`sparse-rcnn quantize` of the export)")
    ap.add_argument("--out", default=osp.join(HERE, "results", "side_by_side.jsonl"))
    args = ap.parse_args()
    os.makedirs(osp.dirname(args.out), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="side_by_side_") as tmp:
        onnx = args.onnx
        if not onnx and any("{onnx}" in MODES[m][0] for m in args.modes):
            onnx = osp.join(tmp, f"{CONFIG}.onnx")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sparse_rcnn.cli",
                    "export",
                    "--model",
                    CONFIG,
                    "--weights",
                    CKPT,
                    "--output",
                    onnx,
                    "--dynamic",
                ],
                check=True,
            )
        if any("{int8}" in MODES[m][0] for m in args.modes) and not args.int8_onnx:
            ap.error("the *-int8 modes time --int8-onnx FILE (made by `sparse-rcnn quantize --onnx ...`)")
        summary = run_rounds(args, onnx)
    print(json.dumps({"summary": summary}))
    return 0


def run_rounds(args: argparse.Namespace, onnx: str | None) -> dict:
    """``args.rounds`` rounds of MMDetection and every mode at every batch size; returns the summary."""
    ratios: dict[str, list[float]] = {}
    size = ["--size", args.size]
    with open(args.out, "a") as log:
        for r in range(args.rounds):
            mmdet: dict[tuple[str, str, int], dict] = {}
            for mode in args.modes:
                extra, kind = MODES[mode]
                extra = [{"{onnx}": onnx, "{int8}": args.int8_onnx}.get(a, a) for a in extra]
                iters = args.train_iters if kind == "train" else args.iters
                for batch in [2] if kind == "train" else args.batch:
                    for malloc in args.mmdet_malloc:  # MMDetection first, then ours
                        if (kind, malloc, batch) in mmdet and not args.pair_each:
                            continue
                        cmd = (
                            [
                                ORACLE_PY,
                                osp.join(HERE, "mmdet_bench.py"),
                                "--iters",
                                str(iters),
                                "--threads",
                                str(args.threads),
                                "--batch-size",
                                str(batch),
                            ]
                            + size
                            + (["--train"] if kind == "train" else [])
                        )
                        res = run_json(cmd, MALLOC_ENV[malloc])
                        res.update(round=r, load=os.getloadavg()[0], malloc=malloc)
                        log.write(json.dumps(res) + "\n")
                        mmdet[kind, malloc, batch] = res
                    cmd = (
                        [
                            sys.executable,
                            "-m",
                            "sparse_rcnn.cli",
                            "benchmark",
                            "--model",
                            CONFIG,
                            "--iters",
                            str(iters),
                            "--threads",
                            str(args.threads),
                            "--batch-size",
                            str(batch),
                        ]
                        + size
                        + extra
                    )
                    if "--onnx" not in extra:
                        cmd += ["--weights", CKPT]
                    try:
                        ours = run_json(cmd)
                    except RuntimeError as e:  # e.g. openvino-bf16 on a CPU without bf16 instructions: the others go on
                        print(
                            f"round {r} {mode:<16} batch {batch} skipped: {str(e).strip().splitlines()[-1]}", flush=True
                        )
                        continue
                    ours.update(round=r, mode_name=mode)
                    log.write(json.dumps(ours) + "\n")
                    log.flush()
                    for malloc in args.mmdet_malloc:
                        theirs = mmdet[kind, malloc, batch]
                        ratio = ours["images_per_s"] / theirs["images_per_s"]
                        ratios.setdefault(f"{mode} batch {batch} vs mmdet[{malloc}]", []).append(ratio)
                        print(
                            f"round {r} {mode:<16} batch {batch} ours {ours['latency_ms_median']:9.0f} ms  "
                            f"mmdet[{malloc}] {theirs['latency_ms_median']:9.0f} ms  speed-up x{ratio:.2f}  "
                            f"(load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
        summary = {
            m: {"median_speedup": statistics.median(v), "all": [round(x, 3) for x in v]} for m, v in ratios.items()
        }
        log.write(json.dumps({"summary": summary}) + "\n")
    return summary


if __name__ == "__main__":
    sys.exit(main())
