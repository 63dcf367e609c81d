"""``sparse-rcnn train`` and ``demo``: a config and data in, checkpoints, metrics and pictures out."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from ..checkpoints import pretrained_config, read_pretrained
from ..common import claim_folder
from ..config import load_config
from ..data import FORMATS, SyntheticSpec, default_coco_images, detect_format, generate_shapes
from ..engine import Trainer, TrainingError, TrainingInterrupted, analyse_results
from ..models import load_model
from ..video import MissingVideoPackageError, track_clip
from ..visualize import draw_predictions
from .args import UsageError, device_arg, non_negative_int, positive_int, print_metrics

log = logging.getLogger("sparse_rcnn")
DEMO_MARKER = ".sparse-rcnn-demo"


def _add_schedule_args(p: argparse.ArgumentParser) -> None:
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, help="epochs to train (default: the config's)")
    length.add_argument("--max-iters", type=positive_int, help="stop after this many iterations instead")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on COCO, YOLO or Pascal VOC data (one process, or several under torchrun)",
        description="Train Sparse R-CNN. "
        "Several processes: torchrun --nproc_per_node=N --no-python sparse-rcnn train ... "
        "Exit status: 0 done; 1 training diverged (non-finite losses; the last good checkpoint is kept); 2 bad "
        "input; 130 / 143 stopped by SIGINT / SIGTERM after writing a checkpoint (continue with --resume).",
    )
    p.add_argument(
        "--config",
        help="named config (see `sparse-rcnn models`) or a YAML file (default with --weights: "
        "the checkpoint's own config, or the zoo name's)",
    )
    p.add_argument(
        "--weights",
        help="start from this detector: a zoo name, a checkpoint file or URL, ours or "
        "MMDetection's; classes follow the training data (matching names keep their classifier rows)",
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="the dataset: a YOLO data.yaml (or its folder), a Pascal VOC folder, "
        "or a COCO .json (the training set; images beside it, or --train-images)",
    )
    p.add_argument("--data-format", choices=FORMATS, help="the format of --data (default: detected, and logged)")
    p.add_argument("--train-ann", help="COCO annotation JSON of the training set (default: the config's)")
    p.add_argument("--train-images", help="folder holding the training images")
    p.add_argument("--val-ann", help="COCO annotation JSON to evaluate on after each epoch")
    p.add_argument("--val-images", help="folder holding the validation images")
    _add_schedule_args(p)
    p.add_argument("--batch-size", type=positive_int, help="images per process and step (default: 2)")
    p.add_argument("--workers", type=non_negative_int, help="data loading processes (default: 2)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. train.lr=1e-4 or data.pipeline=multiscale (repeatable)",
    )
    p.add_argument("--output-dir", required=True, help="checkpoints, log.jsonl, curves.png, model_final.pth go here")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --output-dir")
    p.add_argument("--device", type=device_arg, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.set_defaults(func=run_train)

    p = sub.add_parser(
        "demo",
        help="generate a shapes dataset, train a small model on it from scratch, evaluate, draw",
        description="The built-in demo, trained from scratch (no download). "
        "Writes the data, checkpoints, metrics.json, "
        "curves.png, predictions.png and the evaluation report (report/index.html) to --output-dir, then tracks "
        "a generated clip of moving shapes with the model and scores the tracks (video/; needs the video extra). "
        "--resume on a finished demo trains no further and redoes the evaluation and the tracking.",
    )
    p.add_argument(
        "--output-dir", default="sparse-rcnn-demo", help="where everything goes (default: ./sparse-rcnn-demo)"
    )
    p.add_argument("--config", default="sparse_rcnn_r18_demo_shapes", help="named config or YAML (default: the demo's)")
    _add_schedule_args(p)
    p.add_argument(
        "--num-images", type=positive_int, help="training images to generate (validation: a tenth, at least 20)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated dataset")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. train.lr=1e-4 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --output-dir")
    p.add_argument("--device", type=device_arg, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.set_defaults(func=run_demo)


def _schedule(args: argparse.Namespace) -> dict:
    """TrainConfig overrides from --epochs / --max-iters (--epochs alone drops a config's max_iters)."""
    train: dict = {"epochs": args.epochs, "max_iters": None} if args.epochs else {}
    if args.max_iters:
        train["max_iters"] = args.max_iters
    return train


def _fit(cfg, output_dir, args: argparse.Namespace, init_weights=None):
    """Build and run a Trainer -> (trainer, metrics, 0); an interruption or a training error is
    logged and returned as the exit status instead (128 + signal, or 1)."""
    try:
        trainer = Trainer(cfg, output_dir=output_dir, resume=args.resume, device=args.device, init_weights=init_weights)
        return trainer, trainer.fit(), 0
    except TrainingInterrupted as e:
        log.warning("%s", e)
        return None, None, 128 + e.signum
    except TrainingError as e:
        log.error("%s", e)
        return None, None, 1
    except RuntimeError as e:  # torch's "DataLoader worker (pid 123) is killed by signal: Killed."
        if "DataLoader worker" not in str(e):
            raise
        log.error(
            "%s (often: out of memory; try fewer --workers); continue from the last checkpoint with --resume",
            str(e).splitlines()[0].rstrip(". "),
        )
        return None, None, 1


def _data_overrides(args: argparse.Namespace) -> dict:
    """DataConfig values from the command line. Own data replaces the config's (COCO) paths."""
    data = {
        "train_ann": args.train_ann,
        "train_images": args.train_images,
        "val_ann": args.val_ann,
        "val_images": args.val_images,
        "batch_size": args.batch_size,
        "workers": args.workers,
    }
    data = {k: v for k, v in data.items() if v is not None}
    if args.data_format and not args.data:
        raise UsageError("--data-format goes with --data")
    if args.data and args.train_ann:
        raise UsageError("--data and --train-ann both name the training set; give one")
    if args.data and (args.data_format or detect_format(args.data)) == "coco":  # a COCO json: the training set
        data.update(
            root=None, train_ann=args.data, train_images=args.train_images or str(default_coco_images(args.data))
        )
    elif args.data:
        if args.train_images or args.val_ann or args.val_images:
            raise UsageError(
                "a YOLO / VOC --data names its own images and splits (choose them with --set "
                "data.train_split=... data.val_split=...); drop --train-images/--val-ann/--val-images"
            )
        return {
            **data,
            "root": args.data,
            "format": args.data_format,
            "train_ann": None,
            "train_images": None,
            "val_ann": None,
            "val_images": None,
        }
    if (args.data or args.train_ann or args.train_images) and not (args.val_ann or args.val_images):
        data.update(val_ann=None, val_images=None)  # own data: the config's COCO val paths do not apply
    return data


def run_train(args: argparse.Namespace) -> int:
    pretrained = read_pretrained(args.weights) if args.weights else None
    if args.config:
        cfg = load_config(args.config, args.set)
    elif pretrained is not None:
        cfg = pretrained_config(pretrained, args.set)
    else:
        raise UsageError("give --config, or --weights with a checkpoint that carries its config")
    data = _data_overrides(args)
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, **data), train=dataclasses.replace(cfg.train, **_schedule(args))
    )
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    if not main_process:
        logging.getLogger("sparse_rcnn").setLevel(logging.WARNING)
    trainer, metrics, status = _fit(cfg, args.output_dir, args, init_weights=pretrained)
    if status:
        return status
    if main_process:
        _store_thresholds(trainer, Path(args.output_dir))
        print_metrics(metrics)
    return 0


def _store_thresholds(trainer, out: Path, report_dir=None) -> None:
    """The final validation's F1-optimal score thresholds into model_final.pth (and the report)."""
    results = getattr(trainer, "val_results", None)
    if results is None or not (out / "model_final.pth").is_file():
        return
    info = {"model": trainer.cfg.name, "weights": str(out / "model_final.pth"), "ann": trainer.cfg.data.val_ann}
    analyse_results(
        trainer.val_dataset,
        results,
        class_names=trainer.model.class_names,
        report_dir=report_dir,
        save_thresholds=out / "model_final.pth",
        info=info,
    )


def run_demo(args: argparse.Namespace) -> int:
    """Generate the shapes dataset, train the demo config on it, evaluate, draw the results."""
    out = Path(args.output_dir)
    cfg = load_config(args.config, args.set)
    claim_folder(out, DEMO_MARKER)  # never over a user's files: empty, new, or an earlier demo's
    size = min(cfg.model.test_scale)  # square images that the test scale leaves as they are
    counts = {"num_train": args.num_images, "num_val": max(20, args.num_images // 10)} if args.num_images else {}
    spec = SyntheticSpec(
        seed=args.seed, image_size=size, min_size=round(size / 8), max_size=round(size * 0.46), **counts
    )
    data = generate_shapes(out / "data", spec)
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(
            cfg.data,
            train_ann=str(data.train_ann),
            train_images=str(data.train_images),
            val_ann=str(data.val_ann),
            val_images=str(data.val_images),
        ),
        train=dataclasses.replace(cfg.train, **_schedule(args)),
    )
    trainer, metrics, status = _fit(cfg, out, args)
    if status:
        return status
    draw_predictions(trainer.model, trainer.val_dataset, out / "predictions.png", device=trainer.device)
    _store_thresholds(trainer, out, report_dir=out / "report")
    print_metrics(metrics)
    print(f"metrics:     {out / 'metrics.json'}")
    print(f"curves:      {out / 'curves.png'}")
    print(f"predictions: {out / 'predictions.png'} (white: ground truth; coloured: predictions with score >= 0.3)")
    print(f"report:      {out / 'report' / 'index.html'} (PR curves, confusion matrix, score thresholds, worst images)")
    print(
        f"model:       {out / 'model_final.pth'} (sparse-rcnn predict --weights {out / 'model_final.pth'} "
        "--score-thr auto IMAGES)"
    )
    _track_demo_clip(out, trainer.device)
    return 0


def _track_demo_clip(out: Path, device) -> None:
    """The trained model (with its stored thresholds) tracks a generated clip; print its scores."""
    model = load_model(weights=str(out / "model_final.pth"), device=device)
    try:
        result = track_clip(model, out / "video")
    except MissingVideoPackageError as e:
        log.warning("no tracking step: %s", e)
        return
    frames = ", ".join(str(f) for f in result.strip_frames)
    print(
        f"tracking:    {result.summary()} on {result.video} (seed {result.spec.seed}, {result.spec.num_frames} frames)"
    )
    print(f"tracks:      {result.annotated} (annotated clip), {result.strip} (frames {frames})")
    print(f"             sparse-rcnn eval-track --gt {result.gt} --pred {result.tracks}")
