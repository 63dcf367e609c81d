"""Fast inference modes on a *trained* model: COCO AP and top-k agreement with plain fp32.

The MMDetection reference checkpoints are random networks that amplify rounding block by block
(BENCHMARKS.md section 2). This runs the modes on a trained checkpoint instead: by default the
built-in demo's (ResNet-18 trained from scratch on the generated shapes: run
``sparse-rcnn demo --output-dir DIR`` first), or any checkpoint with a COCO-format set. For each
mode it reports box AP and, against plain fp32, the fraction of each image's top-k detections
matched one to one with the same label and IoU >= 0.9 (``check_fast_modes.topk_agreement``).

    python benchmarks/fast_modes_trained.py --demo-dir DIR [--modes fp32 fp32-winograd bf16 ...]
    python benchmarks/fast_modes_trained.py --weights W --ann A.json --images DIR
    python benchmarks/fast_modes_trained.py --demo-dir DIR --modes onnxruntime-fp32 openvino-fp32 openvino-bf16
    python benchmarks/fast_modes_trained.py --demo-dir DIR --modes openvino-int8 onnxruntime-int8 --int8-onnx q.onnx

The exported-graph modes (``check_fast_modes.RUNTIME_MODES``) export the checkpoint to ONNX once,
into a temporary folder (or --onnx-dir), never beside the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import statistics
import sys
import tempfile
from collections import defaultdict

import torch

from check_fast_modes import MODES, RUNTIME_MODES, runtime_detector, topk_agreement
from sparse_rcnn.data import CocoDetection
from sparse_rcnn.evaluation import evaluate
from sparse_rcnn.models import load_model


def per_image(results: list[dict]) -> dict[int, dict[str, torch.Tensor]]:
    """COCO results -> image id -> {"boxes" (k, 4) xyxy, "scores" (k,), "labels" (k,)}."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    out = {}
    for image_id, rs in by_image.items():
        boxes = torch.tensor([r["bbox"] for r in rs], dtype=torch.float64)
        boxes[:, 2:] += boxes[:, :2]
        out[image_id] = {
            "boxes": boxes,
            "scores": torch.tensor([r["score"] for r in rs]),
            "labels": torch.tensor([r["category_id"] for r in rs]),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo-dir", help="a `sparse-rcnn demo` output folder (its model and validation set)")
    ap.add_argument("--weights")
    ap.add_argument("--ann")
    ap.add_argument("--images")
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["fp32-winograd", "fp32-winograd-fold", "bf16", "bf16-fpn"],
        choices=[m for m in MODES if m != "fp32"] + list(RUNTIME_MODES),
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--onnx-dir", help="where the exported-graph modes write their ONNX file (default: a temporary folder)"
    )
    ap.add_argument("--int8-onnx", help="the int8 graph of the *-int8 modes (`sparse-rcnn quantize` of the export)")
    args = ap.parse_args()
    if args.demo_dir:
        args.weights = args.weights or osp.join(args.demo_dir, "model_final.pth")
        args.ann = args.ann or osp.join(args.demo_dir, "data", "annotations", "val.json")
        args.images = args.images or osp.join(args.demo_dir, "data", "val")
    if not (args.weights and args.ann and args.images):
        ap.error("give --demo-dir, or --weights, --ann and --images")
    torch.set_num_threads(args.threads)
    dataset = CocoDetection(args.ann, args.images, train=False)
    with tempfile.TemporaryDirectory(prefix="fast_modes_") as tmp:
        onnx_path = osp.join(args.onnx_dir or tmp, osp.splitext(osp.basename(args.weights))[0] + ".onnx")
        compare_modes(args, dataset, onnx_path)
    return 0


def compare_modes(args: argparse.Namespace, dataset: CocoDetection, onnx_path: str) -> None:
    """One JSON line per mode: its AP and its top-k agreement with plain fp32."""
    baseline = None
    for mode in ["fp32"] + args.modes:
        model = load_model(None, args.weights)
        if mode in RUNTIME_MODES:
            try:
                model = runtime_detector(
                    model, mode, onnx_path, args.threads, args.int8_onnx
                )  # a Detector, evaluated the same way
            except ValueError as e:
                print(json.dumps({"mode": mode, "weights": args.weights, "skipped": str(e)}), flush=True)
                continue
        elif MODES[mode] is not None:
            model.optimize_for_inference(**MODES[mode])
        metrics, results = evaluate(model, dataset, progress=False)
        dets = per_image(results)
        baseline = baseline or dets
        agree = [topk_agreement(baseline[i], dets.get(i, {k: v[:0] for k, v in baseline[i].items()})) for i in baseline]
        print(
            json.dumps(
                {
                    "mode": mode,
                    "kwargs": MODES.get(mode, RUNTIME_MODES.get(mode)),
                    "weights": args.weights,
                    "images": len(dataset),
                    "bbox_mAP": round(metrics["bbox_mAP"], 4),
                    "bbox_mAP_50": round(metrics["bbox_mAP_50"], 4),
                    "topk_matched_mean": round(statistics.mean(agree), 4),
                    "topk_matched_min": round(min(agree), 4),
                    "images_with_95pct_matched": round(sum(a >= 0.95 for a in agree) / len(agree), 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
