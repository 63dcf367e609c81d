"""``sparse-rcnn benchmark``: time inference or training steps on synthetic images (BENCHMARKS.md), of the
PyTorch model or of an exported file on ONNX Runtime / OpenVINO (``--onnx``, ``--runtime``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import torch

from ..config import load_config
from ..engine import benchmark_detector, run_benchmark
from ..models import build_model, load_model
from ..ops import COMPILE_MODES, PRECISIONS, compile_detect, optimize_for_inference
from .args import UsageError, add_runtime_args, onnx_detector, parse_size, runtime_of


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="time inference or training steps on synthetic images")
    p.add_argument("--model", default="sparse_rcnn_r50_fpn_1x_coco", help="named config or YAML")
    p.add_argument("--weights", help="checkpoint (default: random init, no download)")
    p.add_argument("--size", type=parse_size, default=(800, 1333), help="image HxW (default 800x1333)")
    p.add_argument("--batch-size", type=int, help="default 1, or 2 with --train")
    p.add_argument("--iters", type=int, default=5, help="timed iterations (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument(
        "--dtype",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="inference precision (see model.optimize_for_inference); autocast with --train",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--train", action="store_true", help="time forward+backward+clip+AdamW steps")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (with --onnx: the runtime's threads)")
    p.add_argument("--proposals", type=int, help="override the number of proposals (random init only)")
    p.add_argument(
        "--scope",
        choices=("backbone", "fpn"),
        default="backbone",
        help="convolutions in --dtype: ResNet body + FPN (default) or the FPN only",
    )
    p.add_argument("--fold-bn", action="store_true", help="fold frozen BatchNorm into the convs")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC convolutions (default: on for bf16/fp16, off for fp32)",
    )
    p.add_argument(
        "--winograd", action="store_true", help="fp32 3x3 convolutions with NNPACK's Winograd kernel (CPU inference)"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the detector's static graph (model.detect; see sparse_rcnn.ops.compile)",
    )
    p.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        default="default",
        help="with --compile: reduce-overhead = CUDA graphs (fixed sizes)",
    )
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs on CUDA")
    p.add_argument("--output", help="also write the JSON here")
    add_runtime_args(p, threads=False)
    p.set_defaults(func=run)


def _run_exported(args: argparse.Namespace) -> dict:
    """--onnx: time the exported file on --runtime as the PyTorch model is timed."""
    pytorch_only = [
        flag
        for flag, on in (
            ("--weights", args.weights),
            ("--train", args.train),
            ("--proposals", args.proposals),
            ("--fold-bn", args.fold_bn),
            ("--channels-last", args.channels_last),
            ("--compile", args.compile),
            ("--device", args.device != "cpu"),
        )
        if on
    ]
    if pytorch_only:
        raise UsageError(f"{', '.join(pytorch_only)}: PyTorch options; --onnx times the exported file as it is")
    detector = onnx_detector(args)
    result = benchmark_detector(
        detector, size=args.size, batch_size=args.batch_size or 1, iters=args.iters, warmup=args.warmup
    )
    result.update(
        model=detector.model_name,
        load=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        malloc=getattr(args, "malloc", "system"),
    )
    return result


def run(args: argparse.Namespace) -> int:
    if args.weights and args.proposals:
        raise UsageError("--proposals only applies to a random-init model; drop --weights or --proposals")
    if args.threads:
        torch.set_num_threads(args.threads)
    if runtime_of(args) != "torch":
        return _print(_run_exported(args), args.output)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {args.device} but no CUDA device is visible; use --device cpu")
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
            optimize_for_inference(
                model,
                dtype=args.dtype,
                fold_bn=args.fold_bn,
                channels_last=args.channels_last,
                scope=args.scope,
                winograd=args.winograd,
            )
        except ValueError as e:
            raise UsageError(str(e)) from None
        if args.compile:
            compile_detect(model, mode=args.compile_mode)
    batch_size = args.batch_size or (2 if args.train else 1)
    result = run_benchmark(
        model,
        size=args.size,
        batch_size=batch_size,
        iters=args.iters,
        warmup=args.warmup,
        train=args.train,
        device=args.device,
        dtype=args.dtype,
    )
    result.update(
        model=name,
        proposals=model.proposal_boxes.num_embeddings,
        fold_bn=args.fold_bn and not args.train,
        scope=args.scope,
        channels_last=model.backbone.channels_last,
        winograd=args.winograd and not args.train,
        compile=args.compile,
        compile_mode=args.compile_mode if args.compile and not args.train else None,
        tf32=args.tf32 if args.device.startswith("cuda") else None,
        weights=args.weights,
        load=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        malloc=getattr(args, "malloc", "system"),
    )
    return _print(result, args.output)


def _print(result: dict, output) -> int:
    text = json.dumps(result)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0
