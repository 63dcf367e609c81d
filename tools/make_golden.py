#!/usr/bin/env python
"""Write the golden parity fixture ``tests/golden/`` with MMDetection's own Sparse R-CNN (tiny dims).

Runs in the oracle venv made by ``../shared/mmdet-reference/setup.sh`` (never in CI):

    ~/.cache/sparse-rcnn-oracle/venv/bin/python tools/make_golden.py [--out tests/golden]

The model is MMDetection 3.3's ``sparse-rcnn_r50_fpn_1x_coco`` config with every loss, assigner,
coder and pipeline step unchanged and only the sizes made small: ResNet-18 (``norm_eval=True``,
``frozen_stages=1``, pytorch style = torchvision's resnet18), FPN [64, 128, 256, 512] -> 64, 16
proposals, 6 DIIHeads with 64 channels, FFN 128, 4 heads, dynamic conv 16, 10 classes, 20
detections per image. Its weights are not stored: ``golden_weights.generate_state`` makes them from
the key list (stored) and a seed, identically on both sides. The fixture records the final
detections of ``inference_detector`` (batch 1 per image, test pipeline with Resize to 704x448,
keep-ratio, instead of 1333x800 so that the CPU test takes seconds),
per-stage logits / deltas / boxes / object features, and for the 2-image training batch (1x
pipeline without flip, as make_reference.py) the 18 losses, every gradient norm and the Hungarian
assignment of every stage.
"""

import argparse
import copy
import json
import os
import os.path as osp
import sys

import numpy as np
import torch
from PIL import Image

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
MMDET_REFERENCE = os.environ.get(
    "MMDET_REFERENCE", osp.join(osp.dirname(osp.abspath(__file__)), "..", "..", "shared", "mmdet-reference")
)
sys.path.insert(0, osp.join(REPO, "tests", "golden"))
sys.path.insert(0, MMDET_REFERENCE)

from golden_weights import generate_state, state_sha256  # noqa: E402
from make_reference import Recorder, load_cfg, pack_intermediates  # noqa: E402

SEED = 1234
# Test and train Resize scale (keep ratio). Smaller than the zoo's 1333x800 so the CPU test takes
# seconds, yet big enough that whole-image RoIs reach P5 (sqrt(area) >= 448 px).
SCALE = (704, 448)
DIMS = dict(
    depth=18,
    in_channels=[64, 128, 256, 512],
    channels=64,
    num_proposals=16,
    ffn=128,
    heads=4,
    dynamic=16,
    num_classes=10,
    max_per_img=20,
)
# (H, W), ground truth in original pixels (x1, y1, x2, y2) and labels in 0..num_classes-1.
IMAGES = [
    dict(
        shape=(60, 80),
        boxes=[[5.5, 8.25, 40.0, 50.0], [45.0, 10.0, 75.0, 35.0], [30.0, 40.0, 60.0, 58.0]],
        labels=[1, 7, 0],
    ),
    dict(shape=(75, 50), boxes=[[4.0, 6.0, 30.0, 40.0], [20.0, 35.5, 46.0, 70.0]], labels=[3, 9]),
]
GOLDEN_MODEL_CONFIG = dict(  # the same model in sparse-rcnn's ModelConfig terms (read by the test)
    backbone="resnet18",
    pretrained_backbone=False,
    fpn_channels=64,
    num_proposals=16,
    num_stages=6,
    num_heads=4,
    ffn_dim=128,
    dynamic_dim=16,
    num_classes=10,
    max_per_image=20,
    test_scale=list(SCALE),
)


def golden_cfg():
    cfg = load_cfg("sparse-rcnn_r50_fpn_1x_coco")  # init_cfg=None: no download
    m = cfg.model
    m.backbone.depth = DIMS["depth"]
    m.neck.in_channels = DIMS["in_channels"]
    m.neck.out_channels = DIMS["channels"]
    m.rpn_head.num_proposals = DIMS["num_proposals"]
    m.rpn_head.proposal_feature_channel = DIMS["channels"]
    m.roi_head.proposal_feature_channel = DIMS["channels"]
    m.roi_head.bbox_roi_extractor.out_channels = DIMS["channels"]
    for head in m.roi_head.bbox_head:
        head.in_channels = DIMS["channels"]
        head.feedforward_channels = DIMS["ffn"]
        head.num_heads = DIMS["heads"]
        head.num_classes = DIMS["num_classes"]
        head.dynamic_conv_cfg.in_channels = DIMS["channels"]
        head.dynamic_conv_cfg.out_channels = DIMS["channels"]
        head.dynamic_conv_cfg.feat_channels = DIMS["dynamic"]
    m.test_cfg.rcnn.max_per_img = DIMS["max_per_img"]
    for step in cfg.test_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["scale"] = SCALE
    return cfg


def make_images(out_dir, seed):
    """RGB noise with each GT box filled by a flat colour; written as PNG."""
    rng = np.random.RandomState(seed)
    paths = []
    for i, spec in enumerate(IMAGES):
        h, w = spec["shape"]
        img = rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
        for box in spec["boxes"]:
            x1, y1, x2, y2 = [int(round(v)) for v in box]
            img[y1:y2, x1:x2] = rng.randint(0, 256, size=3, dtype=np.uint8)
        path = osp.join(out_dir, f"img{i}.png")
        Image.fromarray(img, mode="RGB").save(path, optimize=True)
        paths.append(path)
    return paths


def train_batch(paths):
    """make_reference.py's deterministic 1x train pipeline (keep-ratio Resize to SCALE, no flip)."""
    from mmengine.dataset import Compose, pseudo_collate

    pipeline = Compose(
        [
            dict(type="LoadImageFromFile"),
            dict(type="LoadAnnotations", with_bbox=True),
            dict(type="Resize", scale=SCALE, keep_ratio=True),
            dict(type="PackDetInputs"),
        ]
    )
    items = []
    for i, (p, spec) in enumerate(zip(paths, IMAGES)):
        h, w = spec["shape"]
        inst = [dict(bbox=b, bbox_label=lab, ignore_flag=0) for b, lab in zip(spec["boxes"], spec["labels"])]
        items.append(pipeline(dict(img_path=p, img_id=i, height=h, width=w, instances=inst)))
    return pseudo_collate(items)


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=osp.join(REPO, "tests", "golden"))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from mmdet.apis import inference_detector
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet")
    os.makedirs(args.out, exist_ok=True)
    cfg = golden_cfg()
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    spec = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()]
    state = generate_state(spec, args.seed)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.eval()
    paths = make_images(args.out, args.seed + 1)
    rec = Recorder(model)
    arrays, detections = {}, []
    for i, p in enumerate(paths):
        rec.reset()
        ds = inference_detector(model, p)
        pred = ds.pred_instances
        order = np.argsort(-f32(pred.scores), kind="stable")
        scores = f32(pred.scores)[order]
        gaps = np.diff(-scores)
        detections.append(
            dict(
                file=osp.basename(p),
                img_shape=list(ds.metainfo["img_shape"]),
                scale_factor=[float(v) for v in ds.metainfo["scale_factor"]],
                boxes=f32(pred.bboxes)[order].tolist(),
                scores=scores.tolist(),
                labels=pred.labels.numpy()[order].tolist(),
            )
        )
        inter = pack_intermediates(rec)
        for s in range(len(model.roi_head.bbox_head)):
            for key in ("cls_score", "bbox_delta", "object_feats"):
                arrays[f"img{i}.stage{s}.{key}"] = f32(inter[f"stage{s}.{key}"][0])
            arrays[f"img{i}.stage{s}.decoded_bboxes"] = f32(inter[f"stage{s}.decoded_bboxes"])
            rois = inter[f"stage{s}.rois"][:, 1:]
            lvl = torch.floor(
                torch.log2(torch.sqrt((rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1])) / 56 + 1e-6)
            ).clamp(0, 3)
            print(
                f"img{i} stage{s}: RoIs per FPN level {torch.bincount(lvl.long(), minlength=4).tolist()}, "
                f"logits [{inter[f'stage{s}.cls_score'].min():.2f}, {inter[f'stage{s}.cls_score'].max():.2f}], "
                f"|feats| max {inter[f'stage{s}.object_feats'].abs().max():.2f}"
            )
        print(
            f"img{i}: {ds.metainfo['img_shape']} top scores {scores[:3].round(4).tolist()}, "
            f"min gap between ranks {gaps.min():.2e}, labels {sorted(set(detections[-1]['labels']))}"
        )
        for lvl, t in enumerate(rec.data["neck"]):
            print(f"  P{lvl + 2} {tuple(t.shape)} std {t.std():.3f} absmax {t.abs().max():.2f}")

    # training forward/backward on the 2-image batch
    data = train_batch(paths)
    model.train()
    model.zero_grad(set_to_none=True)
    rec.reset()
    batch = model.data_preprocessor(copy.deepcopy(data), True)
    losses = model(**batch, mode="loss")
    total, _ = model.parse_losses(losses)
    total.backward()
    grad_norms = {k: (p.grad.norm().item() if p.grad is not None else None) for k, p in model.named_parameters()}
    with_grad = [p.grad for p in model.parameters() if p.grad is not None]
    inter = pack_intermediates(rec)
    assigned = [[g.tolist() for g in inter[f"stage{s}.assigned_gt_inds"]] for s in range(len(model.roi_head.bbox_head))]
    gt_after = [
        dict(
            bboxes=ds.gt_instances.bboxes.tolist(),
            labels=ds.gt_instances.labels.tolist(),
            img_shape=list(ds.metainfo["img_shape"]),
            batch_input_shape=list(ds.metainfo["batch_input_shape"]),
        )
        for ds in batch["data_samples"]
    ]
    rec.remove()
    train = dict(
        losses={k: v.item() for k, v in losses.items() if "loss" in k},
        total_loss=total.item(),
        grad_norms=grad_norms,
        grad_total_norm=torch.norm(torch.stack([g.norm(2) for g in with_grad]), 2).item(),
        gt_after_resize=gt_after,
        assigned_gt_inds=assigned,
    )
    print(
        "train: total loss %.6f, grad norm %.4f, matches per stage %s"
        % (train["total_loss"], train["grad_total_norm"], [sum(v > 0 for img in a for v in img) for a in assigned])
    )

    import mmdet

    golden = dict(
        note="written by tools/make_golden.py; see README.md",
        mmdet_version=mmdet.__version__,
        torch_version=torch.__version__,
        numpy_version=np.__version__,
        seed=args.seed,
        threads=torch.get_num_threads(),
        dims=DIMS,
        model_config=GOLDEN_MODEL_CONFIG,
        spec=spec,
        weights_sha256=state_sha256(state),
        images=[
            dict(file=f"img{i}.png", height=s["shape"][0], width=s["shape"][1], boxes=s["boxes"], labels=s["labels"])
            for i, s in enumerate(IMAGES)
        ],
        detections=detections,
        train=train,
    )
    with open(osp.join(args.out, "golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    np.savez_compressed(osp.join(args.out, "stages.npz"), **arrays)
    print("wrote", args.out, sorted(os.listdir(args.out)))


if __name__ == "__main__":
    main()
