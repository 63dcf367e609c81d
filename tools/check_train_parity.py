"""Training parity with MMDetection through our whole data path (dev tool; needs the oracle outputs).

Writes a COCO json for ``<ref>/inputs/img{0,1}.png`` holding ``gt.json``'s boxes and labels
(category id = label + 1, so contiguous label = COCO label), reads it with ``CocoDetection`` and
the 1x training pipeline (``flip_prob=0``), collates both images into one batch, runs the model
(``<ref>/sparse_rcnn_r50_fpn_1x_coco/ckpt.pth``) in training mode and compares with MMDetection's
own training step (``train_losses.json``): the 18 per-stage losses (relative error <= 1e-4) and,
after ``backward``, the L2 gradient norms of 8 named parameters and the total norm before
clipping (relative error <= 1e-3).

    python tools/check_train_parity.py [--oracle-dir ~/.cache/sparse-rcnn-oracle]

Exit status 0 when everything is within tolerance. ``tests/test_engine.py`` runs ``check`` when
the oracle directory exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from sparse_rcnn.checkpoints import convert_mmdet_state_dict
from sparse_rcnn.data import CocoDetection, collate
from sparse_rcnn.data.transforms import build_train_transform
from sparse_rcnn.models import load_model

CONFIG = "sparse_rcnn_r50_fpn_1x_coco"
LOSS_TOL, GRAD_TOL = 1e-4, 1e-3
ORACLE_DIR = Path(os.environ.get("ORACLE_DIR", Path.home() / ".cache" / "sparse-rcnn-oracle"))


def write_coco(inputs: Path, class_names: list[str], path: Path) -> None:
    gt = json.loads((inputs / "gt.json").read_text())
    images, anns = [], []
    for i, (name, (h, w), g) in enumerate(zip(gt["images"], gt["shapes_hw"], gt["gt_original_coords"])):
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        for (x1, y1, x2, y2), label in zip(g["bboxes"], g["labels"]):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": label + 1,
                    "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                }
            )
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def check(oracle_dir: Path = ORACLE_DIR) -> dict:
    """Run the comparison; returns {"losses": {key: (ours, ref, rel)}, "grads": {...}, "ok": bool}."""
    ref = oracle_dir / "ref" / CONFIG
    inputs = oracle_dir / "ref" / "inputs"
    rec = json.loads((ref / "train_losses.json").read_text())
    model = load_model(CONFIG, str(ref / "ckpt.pth")).train()
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "train.json"
        write_coco(inputs, model.class_names, ann)
        transform = build_train_transform(pipeline="1x", train_scale=(1333, 800), flip_prob=0.0)
        dataset = CocoDetection(ann, inputs, transform=transform, train=True)
        images, targets = collate([dataset[0], dataset[1]])
    losses = model(images, targets)
    out: dict = {"losses": {}, "grads": {}}
    for key, value in rec["losses"].items():
        if "loss" in key:
            ours = losses[key].item()
            out["losses"][key] = (ours, value, abs(ours - value) / abs(value))
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    renamed = convert_mmdet_state_dict({k: torch.zeros(0) for k in rec["grad_norm_selected"]})
    for (mm_name, value), ours_name in zip(rec["grad_norm_selected"].items(), renamed):
        norm = params[ours_name].grad.norm().item()
        out["grads"][mm_name] = (norm, value, abs(norm - value) / abs(value))
    with_grad = [p for p in model.parameters() if p.grad is not None]
    total = torch.nn.utils.clip_grad_norm_(with_grad, float("inf")).item()
    value = rec["grad_total_norm_before_clip"]
    out["grads"]["total_norm_before_clip"] = (total, value, abs(total - value) / abs(value))
    out["num_params_with_grad"] = (len(with_grad), rec["num_params_with_grad"])
    out["ok"] = (
        len(out["losses"]) == 18
        and all(r <= LOSS_TOL for *_, r in out["losses"].values())
        and all(r <= GRAD_TOL for *_, r in out["grads"].values())
        and len(with_grad) == rec["num_params_with_grad"]
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oracle-dir", type=Path, default=ORACLE_DIR)
    args = parser.parse_args()
    if not (args.oracle_dir / "ref" / CONFIG / "train_losses.json").exists():
        print(f"no oracle reference under {args.oracle_dir}/ref/{CONFIG} (see shared/mmdet-reference)", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    out = check(args.oracle_dir)
    print(f"{'quantity':<70} {'ours':>14} {'mmdet':>14} {'rel err':>9}")
    for group in ("losses", "grads"):
        for key, (ours, ref, rel) in out[group].items():
            print(f"{key:<70} {ours:>14.7g} {ref:>14.7g} {rel:>9.2e}")
    print(f"parameters with a gradient: {out['num_params_with_grad'][0]} (mmdet {out['num_params_with_grad'][1]})")
    worst_loss = max(r for *_, r in out["losses"].values())
    worst_grad = max(r for *_, r in out["grads"].values())
    print(
        f"train parity: worst loss rel err {worst_loss:.2e} (tol {LOSS_TOL:.0e}), worst grad-norm rel err "
        f"{worst_grad:.2e} (tol {GRAD_TOL:.0e}) -> {'OK' if out['ok'] else 'FAIL'}"
    )
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
