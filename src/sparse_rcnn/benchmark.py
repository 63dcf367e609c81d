"""Throughput and latency of inference or training steps: the ``sparse-rcnn benchmark`` command.

Synthetic inputs (uint8 noise of a given size from a seeded generator, three fixed ground-truth
boxes per image) so that no data or weights are needed; the same inputs are built by
``benchmarks/mmdet_bench.py`` for the side-by-side comparison with MMDetection. Inference times
``model(images)`` (normalise, pad, backbone, six stages, top-k) under ``no_grad``; ``--train``
times a full step: forward, backward, gradient clipping (L2 norm 1) and an AdamW step.
Results are medians over ``iters`` timed runs after ``warmup`` untimed ones; the JSON keys are
described in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import statistics
import time
from typing import Optional

import torch
from torch import Tensor

log = logging.getLogger(__name__)

# Relative (x1, y1, x2, y2) and labels of the GT boxes of every synthetic image.
_GT_REL = ((0.1, 0.1, 0.4, 0.5), (0.5, 0.2, 0.9, 0.6), (0.3, 0.55, 0.7, 0.95))
_GT_LABELS = (0, 17, 56)


def synthetic_inputs(
    batch_size: int, size: tuple[int, int], num_classes: int = 80
) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """``batch_size`` uint8 (3, H, W) noise images (generator seed 0) and their targets
    (labels taken modulo ``num_classes``)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(batch_size)]
    boxes = torch.tensor(_GT_REL) * torch.tensor([w, h, w, h], dtype=torch.float32)
    targets = [{"boxes": boxes.clone(), "labels": torch.tensor(_GT_LABELS) % num_classes} for _ in range(batch_size)]
    return images, targets


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, iters: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of ``iters`` calls of ``step`` after ``warmup`` untimed calls."""
    times = []
    for k in range(warmup + iters):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def _peak_mem_mb(device: torch.device) -> Optional[float]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS
    except ImportError:
        return None


def run_benchmark(
    model: torch.nn.Module, *, size: tuple[int, int] = (800, 1333), batch_size: int = 1, iters: int = 5,
    warmup: int = 1, train: bool = False, device: str | torch.device = "cpu", dtype: str = "fp32",
    lr: float = 2.5e-5, weight_decay: float = 1e-4, clip_grad_norm: float = 1.0,
) -> dict:
    """Time ``model`` (already on ``device``, and already optimised for ``dtype`` at inference) on
    synthetic inputs of ``size`` (H, W). Training uses autocast when ``dtype`` is not fp32.
    Returns the result dict (see BENCHMARKS.md)."""
    device = torch.device(device)
    images, targets = synthetic_inputs(batch_size, size, model.num_classes)
    images = [img.to(device) for img in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if train:
        from .engine import build_optimizer
        from .model import DTYPES

        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(model, lr=lr, weight_decay=weight_decay)
        amp = dtype != "fp32"
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=DTYPES[dtype], enabled=amp):
                loss = sum(model(images, targets).values())
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
    else:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(images)

    times = sorted(t * 1e3 for t in _time(step, iters, warmup, device))
    median = statistics.median(times)
    return {
        "impl": "sparse-rcnn",
        "mode": "train" if train else "inference",
        "images_per_s": batch_size / (median / 1e3),
        "latency_ms_median": median,
        "latency_ms_p90": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "latency_ms_all": times,
        "peak_mem_mb": _peak_mem_mb(device),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": dtype,
        "batch_size": batch_size,
        "size": list(size),
        "iters": iters,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu_model_name(),
    }


def parse_size(text: str) -> tuple[int, int]:
    """argparse type for ``--size HxW`` (benchmark and export)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HxW, e.g. 800x1333") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be at least 32 pixels")
    return h, w


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .checkpoints import load_model
    from .config import load_config
    from .model import build_model

    if args.weights and args.proposals:
        log.error("--proposals only applies to a random-init model; drop --weights or --proposals")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            log.error("--device %s but no CUDA device is visible; use --device cpu", args.device)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    if args.weights:
        model = load_model(args.model, args.weights, device=args.device)
        name = model.config.name
    else:
        overrides = [f"model.num_proposals={args.proposals}"] if args.proposals else []
        cfg = load_config(args.model, overrides)
        model = build_model(dataclasses.replace(cfg.model, pretrained_backbone=False)).to(args.device)
        name = cfg.name
    if not args.train:
        try:
            model.optimize_for_inference(
                dtype=args.dtype, fold_bn=args.fold_bn, channels_last=args.channels_last, scope=args.scope,
                winograd=args.winograd,
            )
        except ValueError as e:
            log.error("%s", e)
            return 2
        if args.compile:
            model.backbone = torch.compile(model.backbone)
    batch_size = args.batch_size or (2 if args.train else 1)
    result = run_benchmark(
        model, size=args.size, batch_size=batch_size, iters=args.iters, warmup=args.warmup,
        train=args.train, device=args.device, dtype=args.dtype,
    )
    result.update(
        model=name, proposals=model.proposal_boxes.num_embeddings, fold_bn=args.fold_bn and not args.train, scope=args.scope,
        channels_last=model.backbone.channels_last, winograd=args.winograd and not args.train, compile=args.compile,
        tf32=args.tf32 if args.device.startswith("cuda") else None, weights=args.weights,
        load=os.getloadavg()[0] if hasattr(os, "getloadavg") else None, malloc=getattr(args, "malloc", "system"),
    )
    text = json.dumps(result)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


def add_parser(sub) -> None:
    """Register ``sparse-rcnn benchmark`` on the CLI's subparsers."""
    p = sub.add_parser("benchmark", help="time inference or training steps on synthetic images")
    p.add_argument("--model", default="sparse_rcnn_r50_fpn_1x_coco", help="named config or YAML")
    p.add_argument("--weights", help="checkpoint (default: random init, no download)")
    p.add_argument("--size", type=parse_size, default=(800, 1333), help="image HxW (default 800x1333)")
    p.add_argument("--batch-size", type=int, help="default 1, or 2 with --train")
    p.add_argument("--iters", type=int, default=5, help="timed iterations (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="inference precision (see model.optimize_for_inference); autocast with --train")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--train", action="store_true", help="time forward+backward+clip+AdamW steps")
    p.add_argument("--threads", type=int, help="torch.set_num_threads")
    p.add_argument("--proposals", type=int, help="override the number of proposals (random init only)")
    p.add_argument("--scope", choices=("backbone", "fpn"), default="backbone",
                   help="convolutions in --dtype: ResNet body + FPN (default) or the FPN only")
    p.add_argument("--fold-bn", action="store_true", help="fold frozen BatchNorm into the convs")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC convolutions (default: on for bf16/fp16, off for fp32)")
    p.add_argument("--winograd", action="store_true",
                   help="fp32 3x3 convolutions with NNPACK's Winograd kernel (CPU inference)")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs on CUDA")
    p.add_argument("--output", help="also write the JSON here")
    p.set_defaults(func=cmd_benchmark)
