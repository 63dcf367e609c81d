"""Where the time goes: per-component timings, FLOPs, and scaling with proposals and image size.

* breakdown: manual timers (median over --iters) for normalise+pad, ResNet body, FPN, and per
  stage RoIAlign and the stage head, then top-k post-processing; for training also the
  Hungarian matching (cost matrices + scipy) per stage and the backward + AdamW step;
* flops: exact FLOPs of one forward (torch.utils.flop_counter) and the achieved GFLOP/s;
* scaling: inference latency for 100 / 300 / 1000 proposals at 800x1333 and for several image
  sizes at 100 proposals (random init: the cost does not depend on the weights).

  python benchmarks/profile_breakdown.py [--dtype fp32|bf16 | --winograd] [--iters 3] [--skip-scaling]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections import OrderedDict, defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

from sparse_rcnn.config import load_config
from sparse_rcnn.engine import synthetic_inputs
from sparse_rcnn.models import build_model
from sparse_rcnn.models.head import decode_boxes
from sparse_rcnn.ops import keep_freed_memory

CONFIG = "sparse_rcnn_r50_fpn_1x_coco"


def make_model(proposals: int = 100, dtype: str = "fp32", winograd: bool = False):
    cfg = load_config(CONFIG, [f"model.num_proposals={proposals}"])
    model = build_model(dataclasses.replace(cfg.model, pretrained_backbone=False)).eval()
    if dtype != "fp32" or winograd:
        model.optimize_for_inference(dtype=dtype, winograd=winograd)
    return model


class Timers:
    def __init__(self) -> None:
        self.t: dict[str, list[float]] = defaultdict(list)

    def __call__(self, name: str, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.t[name].append((time.perf_counter() - t0) * 1e3)
        return out

    def medians(self) -> dict[str, float]:
        return {k: round(statistics.median(v), 1) for k, v in self.t.items()}


@torch.no_grad()
def inference_breakdown(model, image, iters: int) -> dict[str, float]:
    tm = Timers()
    backbone = model.backbone
    for k in range(iters + 1):
        if k == 1:
            tm.t.clear()  # first pass is warm-up
        batch, sizes = tm("normalise+pad", model.batcher, [image])
        x = batch if backbone.compute_dtype is None else batch.to(backbone.compute_dtype)
        if backbone.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        body = tm("resnet body", backbone.body, x)
        feats = tm(
            "fpn",
            lambda b, dt=batch.dtype: [f.to(dt).contiguous() for f in backbone.fpn(OrderedDict(b)).values()],
            body,
        )
        boxes, pf = model.initial_proposals(sizes)
        for s, stage in enumerate(model.stages):
            roi = tm(f"stage{s} roi_align", model.pooler, feats, boxes)
            with torch.autocast(
                "cpu", dtype=model.head_autocast or torch.float32, enabled=model.head_autocast is not None
            ):
                logits, deltas, pf = tm(f"stage{s} head", stage, pf, roi)
            boxes = decode_boxes(boxes, deltas.float())
        tm("top-k", model.postprocess, logits.float(), boxes)
    return tm.medians()


def training_breakdown(model, images, targets, iters: int) -> dict[str, float]:
    tm = Timers()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2.5e-5, weight_decay=1e-4)
    matcher = model.criterion.matcher
    original = matcher.forward
    calls = [0]

    def timed_match(*args):
        calls[0] += 1
        return tm(f"matching stage{(calls[0] - 1) % len(model.stages)}", original, *args)

    matcher.forward = timed_match
    try:
        for k in range(iters + 1):
            if k == 1:
                tm.t.clear()
            opt.zero_grad(set_to_none=True)
            losses = tm("forward (incl. matching + losses)", model, images, targets)
            loss = sum(losses.values())
            tm("backward", loss.backward)
            tm("clip + AdamW", lambda: (torch.nn.utils.clip_grad_norm_(params, 1.0), opt.step()))
    finally:
        del matcher.forward
    return tm.medians()


def count_flops(model, image) -> float:
    # FlopCounterMode's module tracker needs grad mode on; parameters are switched off instead,
    # and each gets its own flag back afterwards (the frozen stages stay frozen).
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with FlopCounterMode(display=False) as fc:
            model([image])
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return fc.get_total_flops()


@torch.no_grad()
def latency(model, image, iters: int) -> float:
    model([image])
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model([image])
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--winograd", action="store_true", help="fp32 with the Winograd 3x3 convolutions")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    args = ap.parse_args()
    malloc = "keep-freed" if keep_freed_memory() else "system"  # SPARSE_RCNN_MALLOC=system: as the CLI
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = make_model(dtype=args.dtype, winograd=args.winograd)
    (image,), _ = synthetic_inputs(1, (800, 1333))
    out = {"dtype": args.dtype, "winograd": args.winograd, "threads": args.threads, "malloc": malloc}
    out["inference_ms"] = inference_breakdown(model, image, args.iters)
    out["inference_total_ms"] = round(sum(out["inference_ms"].values()), 1)
    print(json.dumps({"inference_ms": out["inference_ms"], "total": out["inference_total_ms"]}), flush=True)
    # FLOPs of the direct convolutions (the counter does not see NNPACK's Winograd kernel)
    flops = count_flops(make_model(dtype=args.dtype) if args.winograd else model, image)
    out["forward_gflop"] = round(flops / 1e9, 2)
    out["achieved_gflop_per_s"] = round(flops / 1e9 / (out["inference_total_ms"] / 1e3), 1)
    print(json.dumps({"gflop": out["forward_gflop"], "gflop_per_s": out["achieved_gflop_per_s"]}), flush=True)
    if not args.skip_training and args.dtype == "fp32" and not args.winograd:
        train_model = make_model()
        images, targets = synthetic_inputs(2, (800, 1333))
        out["train_ms"] = training_breakdown(train_model, images, targets, max(1, args.iters - 1))
        print(json.dumps({"train_ms": out["train_ms"]}), flush=True)
    if not args.skip_scaling:
        out["proposals_ms"] = {
            n: latency(make_model(n, args.dtype, args.winograd), image, args.iters) for n in (100, 300, 1000)
        }
        print(json.dumps({"proposals_ms": out["proposals_ms"]}), flush=True)
        sizes = {}
        for h, w in ((480, 800), (800, 1333), (1024, 1706)):
            (img,), _ = synthetic_inputs(1, (h, w))
            model.test_scale = (max(h, w), min(h, w))  # run at this size, no resize
            sizes[f"{h}x{w}"] = latency(model, img, args.iters)
        out["size_ms"] = sizes
        print(json.dumps({"size_ms": sizes}), flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
