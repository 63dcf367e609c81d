"""Argument types and helpers shared by the subcommands, and the rendering of library errors."""

from __future__ import annotations

import argparse
import re

import torch

from ..config import ConfigError, config_from_dict, override_value
from ..data import FORMATS, CocoDetection, load_split
from ..deploy import RUNTIMES, MissingPackageError, load_detector
from ..models import load_model
from ..ops import PRECISIONS, compile_detect, optimize_for_inference


class UsageError(Exception):
    """A command-line argument cannot be used; the message says which and why."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def score_thr_arg(text: str):
    """argparse type for ``--score-thr``: a number, or ``auto`` (the checkpoint's chosen thresholds)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number such as 0.3, or auto") from None
    if not 0 <= value <= 1:  # also NaN, which compares false: it would keep nothing
        hint = f" (for {value:g} %, give {value / 100:g})" if 1 < value <= 100 else ""
        raise argparse.ArgumentTypeError(f"{text!r}: a score threshold lies between 0 and 1{hint}")
    return value


def parse_size(text: str) -> tuple[int, int]:
    """argparse type for ``--size HxW`` (benchmark and export)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HxW, e.g. 800x1333") from None
    if h < 32 or w < 32:
        raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be at least 32 pixels")
    return h, w


def device_arg(name: str) -> str:
    """argparse type for ``--device``: cpu, cuda, cuda:N or mps, and present on this machine."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{name!r}: no CUDA GPU is available here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{name!r}: MPS is not available here; use --device cpu")
    return name


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="named config (see `sparse-rcnn models`)")
    p.add_argument("--weights", help="checkpoint path or URL (default: the published weights of --model)")


def add_fast_mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dtype",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="bf16: fast CPU mode (AVX512-BF16), fp16: GPU; see BENCHMARKS.md for their deviation",
    )
    p.add_argument(
        "--winograd",
        action="store_true",
        help="fast fp32 CPU mode: 3x3 convolutions with NNPACK's Winograd kernel (see BENCHMARKS.md)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the detector (one static graph, dynamic sizes; compiles on the first image)",
    )


def add_runtime_args(p: argparse.ArgumentParser, *, threads: bool = True) -> None:
    """--onnx / --runtime (and --threads): run an exported file instead of the PyTorch model."""
    p.add_argument(
        "--onnx", metavar="MODEL.onnx", help="run this file from `sparse-rcnn export` instead of a PyTorch model"
    )
    p.add_argument(
        "--runtime",
        choices=("torch", *RUNTIMES),
        help="what runs the model: torch (default; --model/--weights), or an --onnx file on onnxruntime (default "
        'with --onnx) or openvino (--dtype fp32|bf16; bf16 needs AVX512_BF16 or AMX); see README "Speed"',
    )
    if threads:
        p.add_argument("--threads", type=positive_int, help="CPU threads of the runtime (default: its own choice)")


def runtime_of(args: argparse.Namespace) -> str:
    """--runtime, or its default: torch, onnxruntime with --onnx."""
    return args.runtime or ("onnxruntime" if args.onnx else "torch")


def detector_from_args(args: argparse.Namespace):
    """The PyTorch model (--model/--weights on --device, with its fast modes), or with --onnx the
    exported file on --runtime: each is a ``models.Detector``."""
    if runtime_of(args) == "torch":
        if args.onnx:
            raise UsageError("--onnx runs on --runtime onnxruntime or openvino, not torch")
        model = load_model(args.model, args.weights, device=getattr(args, "device", "cpu"))
        apply_fast_mode(model, args)
        return model
    if args.model or args.weights:
        raise UsageError("--model/--weights are not used with --onnx: the .onnx file holds the model")
    return onnx_detector(args)


def onnx_detector(args: argparse.Namespace):
    """The --onnx file on --runtime in --dtype with --threads: a ``Detector`` like the PyTorch model."""
    if not args.onnx:
        raise UsageError(
            f"--runtime {args.runtime} needs --onnx MODEL.onnx, the exported file it runs (make one with "
            "`sparse-rcnn export`)"
        )
    if getattr(args, "winograd", False):
        raise UsageError("--winograd is a PyTorch mode; with --onnx choose --runtime and --dtype")
    try:
        return load_detector(args.onnx, runtime=runtime_of(args), dtype=args.dtype, threads=args.threads)
    except (ValueError, MissingPackageError) as e:
        raise UsageError(str(e)) from None


def apply_fast_mode(model, args: argparse.Namespace) -> None:
    """--dtype / --winograd / --compile: opt-in fast inference; plain fp32 stays bit-identical to MMDetection."""
    if args.dtype != "fp32" or args.winograd:
        try:
            optimize_for_inference(model, dtype=args.dtype, winograd=args.winograd)
        except ValueError as e:
            raise UsageError(f"{e} (--winograd goes with --dtype fp32)") from None
    if getattr(args, "compile", False):
        compile_detect(model)


def add_data_args(p: argparse.ArgumentParser, split_help: str) -> None:
    """--data / --data-format / --split, and --set data.KEY=VALUE for the data options."""
    p.add_argument(
        "--data", metavar="PATH", help="a dataset: YOLO data.yaml (or its folder), Pascal VOC folder, or COCO .json"
    )
    p.add_argument("--data-format", choices=FORMATS, help="the format of --data (default: detected, and logged)")
    p.add_argument("--split", help=split_help)
    add_data_set_arg(p)


def add_data_set_arg(p: argparse.ArgumentParser) -> None:
    """--set data.KEY=VALUE (repeatable): data options for commands that take no config."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="data.KEY=VALUE",
        help="data option, e.g. data.bad_annotations=skip",
    )


def data_config(overrides: list[str], command: str):
    """The data section of a config made of ``--set data.KEY=VALUE`` only (commands that take no
    config, like eval), validated like any config."""
    raw: dict = {"data": {}}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section != "data" or not name:
            raise ConfigError(f"--set {item!r}: {command} takes data.KEY=VALUE, e.g. data.bad_annotations=skip")
        raw["data"][name] = override_value(key.strip(), value)
    return config_from_dict(raw).data


def print_metrics(metrics: dict[str, float]) -> None:
    print(f"{'metric':<28} {'value':>7}")
    for key, value in metrics.items():
        print(f"{key:<28} {value:>7.4f}")


# Library errors name what to change as `parameter` or `section.key=value`; the command line
# says it with its own flags.
FLAGS = {
    "weights": "--weights",
    "model": "--model",
    "resume": "--resume",
    "output_dir": "--output-dir",
    "config": "--config",
    "dynamic": "--dynamic",
    "size": "--size",
    "data.train_ann": "--train-ann",
    "data.train_images": "--train-images",
    "data.val_ann": "--val-ann",
    "data.val_images": "--val-images",
    "data.root": "--data",
    "data.format": "--data-format",
    "images": "--images",
    "score_thr": "--score-thr",
    "save_thresholds": "eval --save-thresholds",
    "dtype": "--dtype",
    "runtime": "--runtime",
    "exporter": "--exporter",
    "max_ap_drop": "--max-ap-drop",
    "num_images": "--num-images",
    "scope": "--scope",
    "max_batch": "--max-batch",
    "max_wait_ms": "--max-wait-ms",
    "max_queue": "--max-queue",
    "timeout_s": "--timeout",
    "max_upload_mb": "--max-upload-mb",
    "max_pixels": "--max-pixels",
    "api_key": "--api-key",
    "every": "--every",
    "max_fps": "--max-fps",
    "start": "--start",
    "end": "--end",
    "track": "--track",
    "tracker": "--tracker",
    "track_thr": "--track-thr",
    "track_nms": "--track-nms",
    "track_high_thr": "--track-high-thr",
    "format": "--format",
    "vis": "--save-vis",
    "gt": "--gt",
    "pred": "--pred",
}


def as_flags(message: str) -> str:
    """Render a library error message for the command line: `weights` -> --weights,
    `data.bad_annotations=skip` -> --set data.bad_annotations=skip."""

    def flag(m: re.Match) -> str:
        name, value = m.group(1), m.group(2) or ""
        if name in FLAGS:
            return FLAGS[name] + (f" {value[1:]}" if value else "")
        return f"--set {name}{value}" if "." in name else name + value

    return re.sub(r"`([a-z_]+(?:\.[a-z_]+)?)(=[^`]*)?`", flag, message)


def dataset_from_args(
    args: argparse.Namespace, bad_annotations: str, *, default_split: str, classes=None
) -> CocoDetection:
    """The dataset a command looks at (eval, show-data): --data (any format) or --ann/--images (COCO)."""
    if bool(args.data) == bool(args.ann):
        raise UsageError("name the data: --data PATH (COCO json, YOLO data.yaml or VOC folder), or --ann and --images")
    if args.ann:
        if not args.images:
            raise UsageError("--ann needs --images (the folder of its images)")
        if args.split or args.data_format:
            raise UsageError("--split and --data-format go with --data")
        return CocoDetection(args.ann, args.images, train=False, bad_annotations=bad_annotations)
    split = load_split(
        args.data, format=args.data_format, split=args.split or default_split, images=args.images, classes=classes
    )
    if split.format == "coco" and args.split:
        raise UsageError("--split is for YOLO / VOC datasets; a COCO json is one split")
    return CocoDetection.from_split(split, train=False, bad_annotations=bad_annotations)
