"""Developer check: ``evaluation/voc.py`` against MMDetection 3.3's own ``VOCMetric`` (never run in CI).

Generates a VOC-like set (whole-pixel ground truth with difficult boxes, detections that are
jittered copies of it plus false ones, ties in score included), scores it with ``voc_evaluate``
here and with ``VOCMetric`` (11points and area) and ``eval_map`` (per class) in the oracle venv,
and prints both. MMDetection gets the boxes as its VOC dataset would hold them (x2 - 1, y2 - 1,
scored with its legacy +1 IoU), which is the same geometry.

    python tools/check_voc_metric.py [--oracle ~/.cache/sparse-rcnn-oracle] [--seed 0]
"""

import argparse
import contextlib
import io
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from sparse_rcnn.evaluation import voc_evaluate

CLASSES = ["bird", "car", "dog", "person"]
DECIMALS = 12

MMDET_SCRIPT = """
import json, sys, numpy as np
from mmdet.evaluation.metrics import VOCMetric
from mmdet.evaluation.functional import eval_map
from mmengine.logging import MMLogger
MMLogger.get_instance("mmdet", log_level="ERROR")
data = json.load(open(sys.argv[1]))
def arr(b):
    a = np.array(b, dtype=np.float32).reshape(-1, 4)
    a[:, 2:] -= 1  # MMDetection's VOC boxes: xmax - 1 (its legacy IoU adds the pixel back)
    return a
gts, dets = [], []
for img in data["images"]:
    gt = [a for a in img["gt"] if not a[5]]
    ign = [a for a in img["gt"] if a[5]]
    labels = np.array([a[0] for a in gt], dtype=np.int64)
    labels_ignore = np.array([a[0] for a in ign], dtype=np.int64)
    gts.append(
        {"bboxes": arr([a[1:5] for a in gt]), "labels": labels, "bboxes_ignore": arr([a[1:5] for a in ign]),
         "labels_ignore": labels_ignore}
    )
    per_class = []
    for c in range(len(data["classes"])):
        d = [x for x in img["dets"] if x[0] == c]
        scores = np.array([x[5] for x in d], dtype=np.float32).reshape(-1, 1)
        per_class.append(np.hstack([arr([x[1:5] for x in d]), scores]))
    dets.append(per_class)
out = {}
for mode in ("area", "11points"):
    m = VOCMetric(eval_mode=mode)
    m.dataset_meta = {"classes": data["classes"]}
    out[mode] = m.compute_metrics(list(zip(gts, dets)))["mAP"]
    _, per = eval_map(dets, gts, iou_thr=0.5, eval_mode=mode, use_legacy_coordinate=True, logger="silent")
    out[mode + "_per_class"] = [float(r["ap"]) for r in per]
print(json.dumps(out))
"""


def generate(seed: int, num_images: int = 60):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_images):
        w, h = int(rng.integers(200, 500)), int(rng.integers(200, 500))
        gt, dets = [], []
        for _ in range(int(rng.integers(1, 7))):
            bw, bh = int(rng.integers(10, w // 2)), int(rng.integers(10, h // 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            c = int(rng.integers(len(CLASSES)))
            gt.append([c, x, y, x + bw, y + bh, int(rng.random() < 0.15)])
            for _ in range(int(rng.integers(0, 3))):  # 0-2 detections of it, jittered by up to 30 % of its size
                j = rng.normal(0, 0.15, 4) * [bw, bh, bw, bh]
                score = float(np.round(rng.random(), DECIMALS))  # ties in score occur
                dets.append(
                    [
                        c if rng.random() < 0.9 else int(rng.integers(len(CLASSES))),
                        *(np.array([x, y, x + bw, y + bh]) + j).tolist(),
                        score,
                    ]
                )
        for _ in range(int(rng.integers(0, 4))):  # false detections
            bw, bh = rng.uniform(10, w / 2), rng.uniform(10, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            dets.append(
                [int(rng.integers(len(CLASSES))), x, y, x + bw, y + bh, float(np.round(rng.random(), DECIMALS))]
            )
        images.append({"width": w, "height": h, "gt": gt, "dets": dets})
    return {"classes": CLASSES, "images": images}


def ours(data):
    coco = COCO()
    anns = [
        {
            "id": k,
            "image_id": i + 1,
            "category_id": a[0] + 1,
            "bbox": [a[1], a[2], a[3] - a[1], a[4] - a[2]],
            "iscrowd": a[5],
            "area": 1.0,
        }
        for i, img in enumerate(data["images"])
        for k, a in enumerate(img["gt"], 1000 * i)
    ]
    coco.dataset = {
        "images": [
            {"id": i + 1, "width": img["width"], "height": img["height"]} for i, img in enumerate(data["images"])
        ],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(data["classes"])],
        "annotations": anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    results = [
        {"image_id": i + 1, "category_id": d[0] + 1, "bbox": [d[1], d[2], d[3] - d[1], d[4] - d[2]], "score": d[5]}
        for i, img in enumerate(data["images"])
        for d in img["dets"]
    ]
    return voc_evaluate(coco, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle", default=str(Path.home() / ".cache/sparse-rcnn-oracle"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--decimals",
        type=int,
        default=12,
        help="scores rounded to this many decimals; 2 makes many ties, whose order MMDetection leaves "
        "to numpy's unstable sort (we keep image order)",
    )
    args = parser.parse_args()
    global DECIMALS
    DECIMALS = args.decimals
    data = generate(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "set.json").write_text(json.dumps(data))
        (Path(tmp) / "voc_mmdet_side.py").write_text(MMDET_SCRIPT)
        run = subprocess.run(
            [f"{args.oracle}/venv/bin/python", f"{tmp}/voc_mmdet_side.py", f"{tmp}/set.json"],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            raise SystemExit(f"MMDetection side failed:\n{run.stderr[-3000:]}")
    mmdet = json.loads(run.stdout.strip().splitlines()[-1])
    mine = ours(data)
    n_gt = sum(len(img["gt"]) for img in data["images"])
    n_det = sum(len(img["dets"]) for img in data["images"])
    print(
        f"{len(data['images'])} images, {n_gt} boxes "
        f"({sum(a[5] for img in data['images'] for a in img['gt'])} difficult), {n_det} detections"
    )
    print(f"{'':<16} {'ours':>10} {'MMDetection':>12} {'diff':>9}")
    worst = 0.0
    for mode, suffix in (("area", ""), ("11points", "_11pt")):
        rows = [(f"mAP {mode}", mine[f"voc_AP50{suffix}"], mmdet[mode])]
        rows += [
            (f"  {c}", mine[f"voc_AP50{suffix}_{c}"], mmdet[f"{mode}_per_class"][k]) for k, c in enumerate(CLASSES)
        ]
        for name, a, b in rows:
            worst = max(worst, abs(a - b))
            print(f"{name:<16} {a:>10.6f} {b:>12.6f} {a - b:>9.1e}")
    print(f"largest difference: {worst:.1e}")


if __name__ == "__main__":
    main()
