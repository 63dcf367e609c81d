"""ONNX Runtime vs PyTorch on the five zoo configs (dev tool; needs the oracle's reference set).

For each config: load ``<ref>/<name>/ckpt.pth``, export with ``--dynamic``, run both backends on
``inputs/img{0,1}.png`` (one at a time and as a batch of 2), and compare the detections in image
pixels rank by rank: scores within 1e-4, boxes within 0.1 px, same labels. Ranks whose scores tie
within 1e-4 may come in another order; those are matched within the tie (``tie_swaps``).
The ``torch 1 vs 2 thr`` columns are the float32 noise floor for the same comparison: PyTorch
against itself with one thread instead of two (another summation order in the convolutions).
The ``vs fp64`` columns measure both float32 backends against the same model run in float64
(the exact result, to float32's eyes): on random weights that magnify rounding, a tolerance
below PyTorch's own float32 error cannot be met by any other float32 runtime.
Each exported graph is also checked to be static: no NonZero, ScatterND, Loop or If node.

    python tools/check_onnx_parity.py [--configs NAME ...] [--ref DIR] [--keep DIR] [--exporter dynamo|torchscript]

Prints one row per config and run, exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from sparse_rcnn.data.images import read_image
from sparse_rcnn.deploy import OnnxDetector, export_onnx
from sparse_rcnn.deploy.export import EXPORTERS, default_exporter
from sparse_rcnn.models import load_model

SCORE_TOL, BOX_TOL = 1e-4, 0.1
CONFIGS = [
    "sparse_rcnn_r50_fpn_1x_coco",
    "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco",
    "sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco",
    "sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco",
    "sparse_rcnn_r101_fpn_300_proposals_crop_mstrain_480-800_3x_coco",
]


def compare(ref: dict, out: dict) -> dict:
    """Rank-by-rank comparison, tie-robust: a rank whose label/box differ must find its partner
    among the ranks whose reference score is within SCORE_TOL of it."""
    rs, os_ = np.asarray(ref["scores"], np.float64), np.asarray(out["scores"], np.float64)
    rb, ob = np.asarray(ref["boxes"], np.float64), np.asarray(out["boxes"], np.float64)
    rl, ol = np.asarray(ref["labels"]), np.asarray(out["labels"])
    if len(rs) != len(os_):
        return {"n": len(rs), "ok": False, "why": f"{len(rs)} vs {len(os_)} detections"}
    score_diff = float(np.abs(rs - os_).max()) if len(rs) else 0.0
    box_diff, swaps, unmatched = 0.0, 0, 0
    for i in range(len(rs)):
        if rl[i] == ol[i] and np.abs(rb[i] - ob[i]).max() <= BOX_TOL:
            box_diff = max(box_diff, float(np.abs(rb[i] - ob[i]).max()))
            continue
        tie = np.nonzero((np.abs(os_ - rs[i]) <= SCORE_TOL) & (ol == rl[i]))[0]
        dists = [np.abs(rb[i] - ob[j]).max() for j in tie]
        if dists and min(dists) <= BOX_TOL:
            swaps += 1
            box_diff = max(box_diff, float(min(dists)))
        else:
            unmatched += 1
    ok = score_diff <= SCORE_TOL and box_diff <= BOX_TOL and unmatched == 0
    return {"n": len(rs), "score": score_diff, "box": box_diff, "swaps": swaps, "unmatched": unmatched, "ok": ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ref", default=os.path.expanduser(os.environ.get("ORACLE_DIR", "~/.cache/sparse-rcnn-oracle")) + "/ref"
    )
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--keep", help="keep the .onnx files in this folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--exporter", choices=EXPORTERS, help="default: the library's (dynamo where onnxscript converts roi_align)"
    )
    args = parser.parse_args()
    print(f"exporter: {args.exporter or default_exporter()}, torch {torch.__version__}")
    torch.set_num_threads(args.threads)
    ref = Path(args.ref)
    paths = [str(ref / "inputs" / f"img{i}.png") for i in (0, 1)]
    arrays = [read_image(p) for p in paths]
    tmp = tempfile.TemporaryDirectory()
    folder = Path(args.keep or tmp.name)
    failed = False
    print(
        f"{'config':<64} {'run':<9} {'dets':>5} {'max|dscore|':>12} {'max|dbox| px':>13} {'tie swaps':>9} "
        f"{'unmatched':>9} "
        f"{'export s':>9} | torch 1 vs 2 thr: {'dscore':>8} {'dbox':>8} | vs fp64 dscore: {'torch':>8} {'ort':>8}  ok"
    )
    for name in args.configs:
        model = load_model(name, str(ref / name / "ckpt.pth"))
        model64 = copy.deepcopy(model).double()
        t0 = time.perf_counter()
        onnx_path = export_onnx(model, folder / f"{name}.onnx", dynamic=True, name=name, exporter=args.exporter)
        export_s = time.perf_counter() - t0
        nodes = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
        dynamic_nodes = sorted({"NonZero", "ScatterND", "Loop", "If"} & set(nodes))
        failed |= bool(dynamic_nodes)
        print(
            f"{name:<64} graph: {len(nodes)} nodes, {nodes.count('RoiAlign')} RoiAlign, "
            + (f"data-dependent nodes {dynamic_nodes}  FAIL" if dynamic_nodes else "no NonZero/ScatterND/Loop/If  ok")
        )
        detector = OnnxDetector(onnx_path, threads=args.threads)
        assert detector.class_names == model.class_names
        runs = {
            "img0": ([arrays[0]], 1),
            "img1": ([arrays[1]], 1),
            "batch2": (arrays, 2),
        }
        for run, (inputs, bs) in runs.items():
            expected = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in inputs], batch_size=bs)
            got = detector(inputs, batch_size=bs)
            torch.set_num_threads(1)
            one_thread = model.predict([torch.from_numpy(a).permute(2, 0, 1) for a in inputs], batch_size=bs)
            torch.set_num_threads(args.threads)
            exact = model64.predict([torch.from_numpy(a).permute(2, 0, 1) for a in inputs], batch_size=bs)
            for k, (e, g, e1, x) in enumerate(zip(expected, got, one_thread, exact)):
                as_np = lambda d: {key: v.numpy() for key, v in d.items() if key != "categories"}  # noqa: E731
                r, floor = compare(as_np(e), g), compare(as_np(e), as_np(e1))
                torch_err, ort_err = compare(as_np(x), as_np(e)), compare(as_np(x), g)
                failed |= not r["ok"]
                label = run if bs == 1 else f"{run}[{k}]"
                if "why" in r:
                    print(f"{name:<64} {label:<9} {r['why']}  FAIL")
                    continue
                print(
                    f"{name:<64} {label:<9} {r['n']:>5} {r['score']:>12.2e} {r['box']:>13.2e} "
                    f"{r['swaps']:>9} {r['unmatched']:>9} "
                    f"{export_s:>9.1f} | {'':>17} {floor.get('score', float('nan')):>8.2e} "
                    f"{floor.get('box', float('nan')):>8.2e} | {'':>15} {torch_err.get('score', float('nan')):>8.2e} "
                    f"{ort_err.get('score', float('nan')):>8.2e}  {'ok' if r['ok'] else 'FAIL'}",
                    flush=True,
                )
        del model, model64, detector
        if not args.keep:
            onnx_path.unlink()
    print("ALL OK" if not failed else "MISMATCH")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
