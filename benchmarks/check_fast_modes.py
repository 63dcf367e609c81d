"""Deviation of every fast inference mode from plain fp32, on the MMDetection reference inputs.

For each mode of ``model.optimize_for_inference`` this runs the R-50 reference checkpoint on the
reference images (batch 1, test pipeline) and reports, against plain fp32:
  * max |score difference| and max |box difference| (px) rank by rank, and whether the output is
    bit-identical;
  * the top-k agreement: greedy one-to-one matching in fp32's score order, same label and
    IoU >= 0.9; the mode passes when >= 95 % of fp32's top-k detections are matched.
The ``onnxruntime-fp32`` / ``openvino-fp32`` / ``openvino-bf16`` modes run the checkpoint exported
to ONNX (once, dynamic shapes, into --out-dir) on that runtime in that precision (``RUNTIME_MODES``).
``compile`` runs ``model.detect`` through ``sparse_rcnn.ops.compile_detect`` (torch.compile, inductor).
It also writes each mode's detections in ``sparse-rcnn predict``'s format to --out-dir, so that
``../shared/mmdet-reference/compare.py REF_DIR DIR/<mode>.json`` checks them against MMDetection.

    python benchmarks/check_fast_modes.py [--modes fp32-cl bf16 ...] [--threads 2]
    python benchmarks/check_fast_modes.py --modes onnxruntime-fp32 openvino-fp32 openvino-bf16
    python benchmarks/check_fast_modes.py --modes compile
    python benchmarks/check_fast_modes.py --modes openvino-int8 onnxruntime-int8 --int8-onnx r50-int8.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys

import torch
from torchvision.ops import box_iou

from sparse_rcnn.models import load_model, predict, to_record
from sparse_rcnn.ops import compile_detect

ORACLE_DIR = os.environ.get("ORACLE_DIR", osp.expanduser("~/.cache/sparse-rcnn-oracle"))
MMDET_REFERENCE = os.environ.get(
    "MMDET_REFERENCE", osp.join(osp.dirname(osp.abspath(__file__)), "..", "..", "shared", "mmdet-reference")
)
COMPARE = osp.join(MMDET_REFERENCE, "compare.py")

# mode name -> optimize_for_inference kwargs (None: the model as loaded, no call at all)
MODES = {
    "fp32": None,
    "fp32-cl": dict(dtype="fp32", channels_last=True),
    "fp32-cl-fold": dict(dtype="fp32", channels_last=True, fold_bn=True),
    "fp32-winograd": dict(dtype="fp32", winograd=True),
    "fp32-winograd-fold": dict(dtype="fp32", winograd=True, fold_bn=True),
    "bf16-backbone": dict(dtype="bf16", channels_last=True, head_dtype="fp32"),
    "bf16": dict(dtype="bf16", channels_last=True),
    "bf16-fold": dict(dtype="bf16", channels_last=True, fold_bn=True),
    "bf16-fpn": dict(dtype="bf16", scope="fpn", channels_last=True),
    "bf16-fpn-fp32head": dict(dtype="bf16", scope="fpn", channels_last=True, head_dtype="fp32"),
    "compile": None,  # fp32, model.detect compiled (compile_detect)
}


# the exported graph: mode name -> (runtime, dtype) of ``sparse_rcnn.deploy.load_detector``
RUNTIME_MODES = {
    "onnxruntime-fp32": ("onnxruntime", "fp32"),
    "openvino-fp32": ("openvino", "fp32"),
    "openvino-bf16": ("openvino", "bf16"),
    "onnxruntime-int8": ("onnxruntime", "fp32"),  # the graph of --int8-onnx
    "openvino-int8": ("openvino", "fp32"),
}


def runtime_detector(model, mode: str, onnx_path: str, threads: int, int8_path: str | None = None):
    """``model`` exported to ``onnx_path`` (once: an existing file is reused) and loaded on the
    runtime of ``mode``. Raises ValueError where the runtime cannot run it (bf16 on a CPU without it)."""
    from sparse_rcnn.deploy import export_onnx, load_detector

    if mode.endswith("-int8"):
        if not int8_path:
            raise ValueError("the *-int8 modes run --int8-onnx FILE (`sparse-rcnn quantize` of the export)")
        onnx_path = int8_path
    elif not osp.exists(onnx_path):
        export_onnx(model, onnx_path, dynamic=True)
    runtime, dtype = RUNTIME_MODES[mode]
    return load_detector(onnx_path, runtime=runtime, dtype=dtype, threads=threads)


def as_tensors(det: dict) -> dict[str, torch.Tensor]:
    """A runtime's numpy detections as the PyTorch model's tensors."""
    return {k: torch.as_tensor(det[k]) for k in ("boxes", "scores", "labels")}


def topk_agreement(ref: dict, det: dict, iou_thr: float = 0.9) -> float:
    """Fraction of ``ref``'s detections matched one-to-one (greedy, ref score order) by a
    detection of ``det`` with the same label and IoU >= iou_thr."""
    iou = box_iou(ref["boxes"].double(), det["boxes"].double())
    iou[ref["labels"][:, None] != det["labels"][None, :]] = -1
    used = torch.zeros(len(det["boxes"]), dtype=torch.bool)
    matched = 0
    for i in torch.argsort(ref["scores"], descending=True).tolist():
        row = iou[i].masked_fill(used, -1)
        j = int(row.argmax())
        if row[j] >= iou_thr:
            used[j] = True
            matched += 1
    return matched / max(1, len(ref["boxes"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="sparse_rcnn_r50_fpn_1x_coco")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES) + list(RUNTIME_MODES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default="/tmp/fast_modes")
    ap.add_argument("--int8-onnx", help="the int8 graph of the *-int8 modes (`sparse-rcnn quantize` of the export)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref_dir = osp.join(ORACLE_DIR, "ref", args.config)
    images = [osp.join(ORACLE_DIR, "ref", "inputs", f"img{i}.png") for i in (0, 1)]
    os.makedirs(args.out_dir, exist_ok=True)
    baseline = None
    ok = True
    for mode in ["fp32"] + [m for m in args.modes if m != "fp32"]:
        model = load_model(args.config, osp.join(ref_dir, "ckpt.pth"))
        if mode in RUNTIME_MODES:
            try:
                detector = runtime_detector(
                    model, mode, osp.join(args.out_dir, f"{args.config}.onnx"), args.threads, args.int8_onnx
                )
            except ValueError as e:
                print(json.dumps({"config": args.config, "mode": mode, "skipped": str(e)}), flush=True)
                continue
            dets = [as_tensors(d) for d in detector(images)]
        else:
            if MODES[mode] is not None:
                model.optimize_for_inference(**MODES[mode])
            if mode == "compile":
                compile_detect(model)
            dets = predict(model, images)
        records = []
        for path, det in zip(images, dets):
            from PIL import Image

            w, h = Image.open(path).size
            records.append(to_record(path, w, h, det, model.class_names))
        out = osp.join(args.out_dir, f"{mode}.json")
        with open(out, "w") as f:
            json.dump(records, f)
        vs_mmdet = subprocess.run([sys.executable, COMPARE, ref_dir, out], capture_output=True, text=True)
        summary = vs_mmdet.stdout.strip().splitlines()[-1] if vs_mmdet.stdout.strip() else vs_mmdet.stderr.strip()
        if baseline is None:
            baseline = dets
        line = {
            "config": args.config,
            "mode": mode,
            "kwargs": MODES.get(mode, RUNTIME_MODES.get(mode)),
            "compare_py_vs_mmdet": summary,
        }
        agree, agree20, max_score, max_box, identical = [], [], 0.0, 0.0, True
        for ref, det in zip(baseline, dets):
            agree.append(topk_agreement(ref, det))
            agree20.append(topk_agreement({k: v[:20] for k, v in ref.items()}, det))  # fp32's 20 best
            max_score = max(max_score, float((ref["scores"] - det["scores"]).abs().max()))
            same = ref["labels"] == det["labels"]
            if same.any():
                max_box = max(max_box, float((ref["boxes"][same] - det["boxes"][same]).abs().max()))
            identical &= all(torch.equal(ref[k], det[k]) for k in ("boxes", "scores", "labels"))
        line.update(
            bit_identical_to_fp32=identical,
            max_score_diff_vs_fp32=max_score,
            max_box_px_vs_fp32_same_rank_label=max_box,
            topk_matched_iou09=[round(a, 4) for a in agree],
            top20_matched_iou09=[round(a, 4) for a in agree20],
            topk_pass=min(agree) >= 0.95,
        )
        ok &= line["topk_pass"]
        print(json.dumps(line), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
