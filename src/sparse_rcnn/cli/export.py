"""``sparse-rcnn export``: the detector as one ONNX graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..common import check_output_dir, check_outputs
from ..deploy import EXPORTERS, export_onnx
from ..models import load_model
from .args import UsageError, add_model_args, parse_size, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export the detector to ONNX (normalised padded batch -> top-k boxes)")
    add_model_args(p)
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--dynamic", action="store_true", help="any batch size and image size (default: fixed)")
    p.add_argument("--opset", type=int, help="ONNX opset, at least 16 (default: 18 with dynamo, 17 with torchscript)")
    p.add_argument(
        "--exporter",
        choices=EXPORTERS,
        help="dynamo: torch.export-based (default where onnxscript is installed); torchscript: the tracing fallback",
    )
    p.add_argument("--batch-size", type=positive_int, default=1, help="batch size of a fixed-shape graph")
    p.add_argument(
        "--size",
        type=parse_size,
        metavar="HxW",
        help="padded input size of a fixed-shape graph, multiples of 32 (default: 800x1344)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    weights = args.weights if args.weights and not args.weights.startswith(("http://", "https://")) else None
    check_outputs([args.output], [weights])
    check_output_dir(Path(args.output).parent)
    model = load_model(args.model, args.weights)
    try:
        path = export_onnx(
            model,
            args.output,
            batch_size=args.batch_size,
            size=args.size,
            dynamic=args.dynamic,
            opset=args.opset,
            exporter=args.exporter,
            name=getattr(model, "config", None) and model.config.name,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(path)
    return 0
