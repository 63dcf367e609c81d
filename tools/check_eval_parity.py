"""Developer check: ``sparse-rcnn eval`` against MMDetection 3.3's own CocoMetric (never run in CI).

Builds a COCO ground-truth file for the oracle inputs (the hand-written GT plus MMDetection's top-4
detections per image, clipped, so that AP is far from 0 and 1), runs ``sparse-rcnn eval`` with the
oracle R-50 checkpoint, runs MMDetection's ``CocoMetric`` on MMDetection's own detections in the
oracle venv, and compares the metrics and the COCO results entry by entry.

    python tools/check_eval_parity.py [--oracle ~/.cache/sparse-rcnn-oracle] [--out /tmp/eval_parity]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from sparse_rcnn.checkpoints import COCO_CATEGORY_IDS as COCO_IDS

CONFIG = "sparse_rcnn_r50_fpn_1x_coco"

MMDET_SCRIPT = """
import json, sys, numpy as np, torch
from mmdet.evaluation.metrics import CocoMetric
ref, out = sys.argv[1], sys.argv[2]
gt = json.load(open(f"{out}/gt.json"))
m = CocoMetric(ann_file=f"{out}/gt.json", metric="bbox", outfile_prefix=f"{out}/mmdet")
m.dataset_meta = {"classes": [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]}
samples = [{"img_id": img["id"], "ori_shape": (img["height"], img["width"]), "pred_instances": {
    k: torch.from_numpy(np.load(f"{ref}/infer_img{i}_{k}.npy")) for k in ("bboxes", "scores", "labels")}}
    for i, img in enumerate(gt["images"])]
m.process({}, samples)
json.dump({k.replace("coco/", ""): float(v) for k, v in m.evaluate(size=len(samples)).items()},
          open(f"{out}/mmdet_metrics.json", "w"), indent=1)
"""


def make_ground_truth(oracle: Path, out: Path) -> None:
    import torch

    ref = oracle / "ref" / CONFIG
    meta = torch.load(ref / "ckpt.pth", map_location="cpu", weights_only=True)["meta"]
    gt = json.loads((oracle / "ref" / "inputs" / "gt.json").read_text())
    images, anns = [], []
    for k, (name, (h, w), g) in enumerate(zip(gt["images"], gt["shapes_hw"], gt["gt_original_coords"])):
        images.append({"id": k + 1, "file_name": name, "width": w, "height": h})
        det = json.loads((ref / f"infer_img{k}.json").read_text())
        top = np.argsort(-np.array(det["scores"]), kind="stable")[:4]
        boxes = g["bboxes"] + [np.clip(det["bboxes"][i], 0, [w, h, w, h]).tolist() for i in top]
        labels = g["labels"] + [det["labels"][i] for i in top]
        for (x1, y1, x2, y2), label in zip(boxes, labels):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": k + 1,
                    "category_id": COCO_IDS[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    cats = [{"id": i, "name": n} for i, n in zip(COCO_IDS, meta["dataset_meta"]["classes"])]
    (out / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", type=Path, default=Path.home() / ".cache" / "sparse-rcnn-oracle")
    parser.add_argument("--out", type=Path, default=Path("/tmp/eval_parity"))
    args = parser.parse_args()
    ref, out = args.oracle / "ref" / CONFIG, args.out
    out.mkdir(parents=True, exist_ok=True)
    make_ground_truth(args.oracle, out)
    subprocess.run(
        [str(args.oracle / "venv" / "bin" / "python"), "-c", MMDET_SCRIPT, str(ref), str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sparse_rcnn.cli",
            "eval",
            "--model",
            CONFIG,
            "--weights",
            str(ref / "ckpt.pth"),
            "--ann",
            str(out / "gt.json"),
            "--images",
            str(args.oracle / "ref" / "inputs"),
            "--output",
            str(out / "ours_metrics.json"),
            "--results",
            str(out / "ours_results.json"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ours, theirs = (
        json.loads((out / "ours_metrics.json").read_text()),
        json.loads((out / "mmdet_metrics.json").read_text()),
    )
    worst = 0.0
    for key, value in theirs.items():  # MMDetection rounds to 3 decimals
        print(f"{key:<14} mmdet {value:7.3f}   sparse-rcnn {ours[key]:.6f}")
        worst = max(worst, abs(round(ours[key], 3) - value))
    key = lambda r: (r["image_id"], -r["score"], r["category_id"], r["bbox"])  # noqa: E731
    a = sorted(json.loads((out / "ours_results.json").read_text()), key=key)
    b = sorted(json.loads((out / "mmdet.bbox.json").read_text()), key=key)
    same = len(a) == len(b) and all(
        x["image_id"] == y["image_id"] and x["category_id"] == y["category_id"] for x, y in zip(a, b)
    )
    box = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x["bbox"], y["bbox"]))
    score = max(abs(x["score"] - y["score"]) for x, y in zip(a, b))
    print(
        f"metrics: max |diff| after rounding = {worst}; results: {len(a)} vs {len(b)}, ids/categories equal: {same}, "
        f"max |bbox diff| = {box}, max |score diff| = {score}"
    )
    ok = worst == 0 and same and box <= 1e-3 and score <= 1e-4
    print("eval parity", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
