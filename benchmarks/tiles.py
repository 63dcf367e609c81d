"""Sliced inference and test-time augmentation on the demo model: what they buy and what they cost.

Two sets: a generated large-image set (``--size`` x ``--size`` images, each holding
``--min-objects``..``--max-objects`` demo shapes of the demo's own sizes, 12-44 px, from
``data/synthetic.py``: more objects than the demo's 20 proposals, too small once the image is
resized to the 96 px test scale), and the demo's own validation set (96 px images: one tile is the
whole image unless ``--val-tile`` is smaller). For each mode

    plain  the model as trained (test scale, its per-image detections)
    tile   TiledDetector(--tile, overlap 0.2, whole image too, NMS 0.5, --max-detections)
    tta    TTADetector(scales 0.8/1.0/1.2, flip, NMS 0.5, --max-detections)
    both   tiles of test-time augmented views

it prints and writes (JSON lines, ``--output``) COCO AP, AP_small, AR@100, AR@300 (MMDetection's
max dets) and images/s over the whole pass (decode, tiling, merging included; on a loaded machine
the speed is not a measurement: run it alone).

    python benchmarks/tiles.py --weights /tmp/demo-model/model_final.pth [--images 20] [--val-images 100]
        [--modes plain,tile,tta,both] [--tile 96] [--val-tile 64] [--device cpu] [--output results/tiles.jsonl]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sparse_rcnn.data.coco import CocoDetection
from sparse_rcnn.data.images import to_image_tensor
from sparse_rcnn.data.synthetic import SyntheticSpec, generate
from sparse_rcnn.evaluation import coco_evaluate
from sparse_rcnn.evaluation.coco import detect_dataset
from sparse_rcnn.inference import TiledDetector, TTADetector
from sparse_rcnn.inference.views import predict_one
from sparse_rcnn.models import load_model
from sparse_rcnn.visualize import draw_detections, save_png

HERE = Path(__file__).resolve().parent
MODES = ("plain", "tile", "tta", "both")


def wrapped(model, mode: str, tile: int, max_detections: int, batch_size: int):
    """The model as ``mode`` runs it."""
    if mode == "plain":
        return model
    if mode == "tta":
        return TTADetector(model, max_detections=max_detections, batch_size=batch_size)
    inner = TTADetector(model, batch_size=batch_size) if mode == "both" else model
    return TiledDetector(inner, (tile, tile), max_detections=max_detections, batch_size=batch_size)


def run_mode(model, dataset: CocoDetection, mode: str, tile: int, args) -> dict:
    detector = wrapped(model, mode, tile, args.max_detections, args.batch_size)
    start = time.perf_counter()
    with torch.no_grad():
        results = detect_dataset(detector, dataset, progress=False, device=args.device)
    seconds = time.perf_counter() - start
    m = coco_evaluate(dataset.coco, results, image_ids=dataset.image_ids, cat_ids=dataset.cat_ids)
    return {
        "mode": mode,
        "tile": tile if mode in ("tile", "both") else None,
        "AP": round(m["bbox_mAP"], 4),
        "AP_small": round(m["bbox_mAP_s"], 4),
        "AR_100": round(m["bbox_AR_100"], 4),
        "AR_300": round(m["bbox_AR_300"], 4),
        "detections_per_image": round(len(results) / max(1, len(dataset)), 1),
        "images_per_s": round(len(dataset) / seconds, 3),
    }


def large_set(args) -> CocoDetection:
    spec = SyntheticSpec(
        num_train=0,
        num_val=args.images,
        image_size=args.size,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        seed=7,
    )
    paths = generate(Path(args.workdir) / f"large_{args.size}_{args.images}", spec)
    return CocoDetection(paths.val_ann, paths.val_images, train=False, min_size=0)


def demo_val(args) -> CocoDetection | None:
    """The demo's val split (its first ``--val-images`` images, as a trimmed copy of the json)."""
    root = Path(args.demo_data)
    ann, images = root / "annotations" / "val.json", root / "val"
    if not ann.exists():
        return None
    if args.val_images:
        coco = json.loads(ann.read_text())
        coco["images"] = coco["images"][: args.val_images]
        kept = {img["id"] for img in coco["images"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
        ann = Path(args.workdir) / f"demo_val_{args.val_images}.json"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps(coco))
    return CocoDetection(ann, images, train=False, min_size=0)


def picture(model, dataset: CocoDetection, tile: int, args) -> None:
    """The first large image's top-left quarter, plain (left) and tiled (right), detections with
    score >= 0.3 drawn, saved to ``--picture``."""
    image, _ = dataset[0]
    image = to_image_tensor(image)
    crop = slice(0, image.shape[1] // 2), slice(0, image.shape[2] // 2)
    panels = []
    for mode in ("plain", "tile"):
        if mode == "plain":
            det = model.predict(image, score_thr=0.3)
        else:
            det = predict_one(wrapped(model, mode, tile, args.max_detections, args.batch_size), model, image, 0.3)
        panels.append(
            draw_detections(image, det["boxes"], det["labels"].tolist(), model.class_names, det["scores"])[
                :, crop[0], crop[1]
            ]
        )
    gap = torch.full((3, panels[0].shape[1], 8), 255, dtype=torch.uint8)
    save_png(torch.cat([panels[0], gap, panels[1]], dim=2), args.picture)
    print(f"wrote {args.picture}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="/tmp/demo-model/model_final.pth")
    p.add_argument("--demo-data", default="/tmp/demo-model/data", help="the demo's generated data (its val split)")
    p.add_argument("--workdir", default="/tmp/tiles-bench")
    p.add_argument("--images", type=int, default=20, help="large images to generate")
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--min-objects", type=int, default=30)
    p.add_argument("--max-objects", type=int, default=80)
    p.add_argument("--val-images", type=int, default=100, help="first N images of the demo's val set (0: all)")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--tile", type=int, default=96, help="tile side on the large set (default: the test scale)")
    p.add_argument("--val-tile", type=int, default=64, help="tile side on the demo's 96 px val images")
    p.add_argument("--max-detections", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=8, help="views per forward")
    p.add_argument("--device", default="cpu")
    p.add_argument("--output", help="append JSON lines here")
    p.add_argument("--picture", help="write the first large image plain vs tiled here (PNG)")
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in modes):
        p.error(f"--modes: choose from {', '.join(MODES)}")
    model = load_model(weights=args.weights, device=args.device).eval()
    sets = [("large", large_set(args), args.tile)]
    if args.picture:
        picture(model, sets[0][1], args.tile, args)
    val = demo_val(args)
    if val is not None:
        sets.append(("demo_val", val, args.val_tile))
    env = {
        "host": platform.node(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": args.device,
    }
    print(f"{'set':10} {'mode':6} {'AP':>6} {'AP_s':>6} {'AR100':>6} {'AR300':>6} {'det/img':>8} {'img/s':>8}")
    for name, dataset, tile in sets:
        for mode in modes:
            row = {"set": name, "images": len(dataset), **run_mode(model, dataset, mode, tile, args), **env}
            print(
                f"{name:10} {mode:6} {row['AP']:6.3f} {row['AP_small']:6.3f} {row['AR_100']:6.3f} "
                f"{row['AR_300']:6.3f} {row['detections_per_image']:8.1f} {row['images_per_s']:8.2f}"
            )
            if args.output:
                with open(args.output, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
