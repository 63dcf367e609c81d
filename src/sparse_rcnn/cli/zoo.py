"""``sparse-rcnn models`` and ``convert``: the named configs, and MMDetection checkpoints to ours."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..checkpoints import ZOO, model_checkpoint, save_checkpoint
from ..common import check_output_dir, check_outputs
from ..config import named_configs
from ..models import load_model

log = logging.getLogger("sparse_rcnn")


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list the named configs and their published AP")
    p.set_defaults(func=run_models)

    p = sub.add_parser("convert", help="convert an MMDetection checkpoint to a sparse-rcnn checkpoint")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--model", help="named config the checkpoint belongs to (default: inferred)")
    p.set_defaults(func=run_convert)


def run_models(args: argparse.Namespace) -> int:
    print(f"{'name':<66} {'box AP':>6}  weights")
    for name in named_configs():
        entry = ZOO.get(name)
        print(
            f"{name:<66} {entry.box_ap if entry else '-':>6}  {entry.url if entry else '(train it: sparse-rcnn demo)'}"
        )
    return 0


def run_convert(args: argparse.Namespace) -> int:
    src = args.src if not args.src.startswith(("http://", "https://")) else None
    check_outputs([args.dst], [src])
    check_output_dir(Path(args.dst).parent)
    model = load_model(args.model, args.src)
    save_checkpoint(model_checkpoint(model, model.config), args.dst)
    log.info("wrote %s (%s, %d classes)", args.dst, model.config.name, model.num_classes)
    return 0
