"""The ``sparse-rcnn`` command: models, predict, convert, train, eval, demo, benchmark, export.

Each subcommand is a small function; errors a user can fix (bad config key, unreadable image or
checkpoint, bad annotations) are printed as one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("sparse_rcnn")


class UsageError(Exception):
    """A command-line argument cannot be used; the message says which and why."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .checkpoints import CheckpointError
    from .config import ConfigError
    from .images import ImageError

    errors: list[type[BaseException]] = [CheckpointError, ConfigError, ImageError, FileNotFoundError, UsageError]
    try:
        from .data import DataError

        errors.append(DataError)
    except ImportError:
        pass
    return tuple(errors)


def cmd_models(args: argparse.Namespace) -> int:
    from .config import named_configs
    from .zoo import ZOO

    print(f"{'name':<66} {'box AP':>6}  weights")
    for name in named_configs():
        entry = ZOO.get(name)
        print(f"{name:<66} {entry.box_ap if entry else '-':>6}  {entry.url if entry else '(train it: sparse-rcnn demo)'}")
    return 0


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


def device_arg(name: str) -> str:
    """argparse type for ``--device``: cpu, cuda, cuda:N or mps, and present on this machine."""
    import torch

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


def _open_output(path: str | None):
    if not path:
        return sys.stdout
    try:
        return open(path, "w")
    except OSError as e:
        raise UsageError(f"cannot write --output {path}: {e.strerror or e}") from None


def _read_list_file(path: str) -> list[str]:
    """One image path per line; blank lines and lines starting with # are skipped."""
    try:
        with open(path) as f:
            return [s for line in f if (s := line.strip()) and not s.startswith("#")]
    except OSError as e:
        raise UsageError(f"cannot read the image list {path}: {e.strerror or e}") from None


def _predict_inputs(args: argparse.Namespace) -> list[str]:
    """Files and folders as given; ``@FILE`` and ``--list FILE`` name list files."""
    items: list[str] = []
    for item in args.images:
        items += _read_list_file(item[1:]) if item.startswith("@") else [item]
    for path in args.list or []:
        items += _read_list_file(path)
    if not items:
        raise UsageError("no images given: pass files, folders, @list.txt or --list FILE")
    return items


def _apply_fast_mode(model, args: argparse.Namespace) -> None:
    """--dtype / --winograd: opt-in fast inference; plain fp32 stays bit-identical to MMDetection."""
    if args.dtype != "fp32" or args.winograd:
        try:
            model.optimize_for_inference(dtype=args.dtype, winograd=args.winograd)
        except ValueError as e:
            raise UsageError(f"{e} (--winograd goes with --dtype fp32)") from None


def _add_fast_mode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="bf16: fast CPU mode (AVX512-BF16), fp16: GPU; see BENCHMARKS.md for their deviation")
    p.add_argument("--winograd", action="store_true",
                   help="fast fp32 CPU mode: 3x3 convolutions with NNPACK's Winograd kernel (see BENCHMARKS.md)")


def _predict_backend(args: argparse.Namespace):
    """(detect(resized uint8 (3, H, W) tensors, scale factors) -> detections, class names, test scale)."""
    import torch

    backend = args.backend or ("onnxruntime" if args.onnx else "torch")
    if backend == "torch":
        if args.onnx:
            raise UsageError("--onnx needs --backend onnxruntime")
        from .checkpoints import load_model

        model = load_model(args.model, args.weights, device=args.device)
        _apply_fast_mode(model, args)

        def detect(images, factors):
            return [{k: v.cpu() for k, v in d.items()} for d in model.detect_resized([i.to(args.device) for i in images], factors)]

        return detect, model.class_names, model.test_scale
    if not args.onnx:
        raise UsageError("--backend onnxruntime needs --onnx MODEL.onnx (make one with `sparse-rcnn export`)")
    if args.model or args.weights:
        raise UsageError("--model/--weights are not used with --backend onnxruntime: the .onnx file holds the model")
    from .runtime import OnnxDetector

    try:
        detector = OnnxDetector(args.onnx)
    except ValueError as e:
        raise UsageError(str(e)) from None

    def detect(images, factors):
        dets = detector.detect_resized([i.permute(1, 2, 0).numpy() for i in images], factors)
        return [{k: torch.from_numpy(v) for k, v in d.items()} for d in dets]

    return detect, detector.class_names, detector.test_scale


def _coco_ids(args: argparse.Namespace, class_names: list[str]) -> tuple[list[int], dict[str, int] | None]:
    """Category id of each label, and image id by file name (from ``--ann``, else None)."""
    from .evaluation import match_categories
    from .zoo import COCO_CATEGORY_IDS, COCO_CLASS_NAMES

    if not args.ann:
        if list(class_names) == list(COCO_CLASS_NAMES):
            return list(COCO_CATEGORY_IDS), None
        return list(range(1, len(class_names) + 1)), None
    try:
        with open(args.ann) as f:
            ann = json.load(f)
        categories = sorted(ann["categories"], key=lambda c: c["id"])
        image_ids = {str(im["file_name"]): int(im["id"]) for im in ann["images"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--ann {args.ann}: not a readable COCO annotation file ({type(e).__name__}: {e})") from None
    cat_ids = match_categories(class_names, [(c["id"], c.get("name")) for c in categories], args.ann)
    if cat_ids is None:
        raise UsageError(f"--ann {args.ann} has {len(categories)} categories but the model predicts {len(class_names)} classes")
    # Also match by base name, so that images given with a folder prefix are found.
    for name, image_id in list(image_ids.items()):
        image_ids.setdefault(Path(name).name, image_id)
    return cat_ids, image_ids


def cmd_predict(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .evaluation import detections_to_coco
    from .predictor import PredictionLoader, to_record
    from .visualize import draw_detections, save_png

    if args.save_vis and Path(args.save_vis).exists() and not Path(args.save_vis).is_dir():
        raise UsageError(f"--save-vis {args.save_vis}: exists and is not a folder")
    inputs = _predict_inputs(args)
    detect, class_names, test_scale = _predict_backend(args)
    cat_ids, image_ids = _coco_ids(args, class_names) if args.format == "coco" else (None, None)
    loader = PredictionLoader(inputs, test_scale=test_scale, batch_size=args.batch_size, workers=args.workers)
    out = _open_output(args.output)
    progress = tqdm(total=len(loader.paths), unit="img", file=sys.stderr, disable=not sys.stderr.isatty())
    num_failed, first, start = 0, True, 0
    out.write("[")
    with torch.no_grad():
        for batch in loader:  # nothing per image is kept: each result is written, then dropped
            window, j = loader.paths[start : start + args.batch_size], 0
            start += args.batch_size
            progress.update(len(window))
            for p, e in batch.failures:
                log.error("skipped %s", e if e.startswith(p) else f"{p}: {e}")
            num_failed += len(batch.failures)
            if not batch.images:
                continue
            dets = detect(batch.images, batch.scale_factors)
            for path, (h, w), det, original in zip(batch.paths, batch.sizes, dets, batch.originals):
                while window[j] != path:  # the index of this image in the input list
                    j += 1
                index, j = start - args.batch_size + j, j + 1
                keep = det["scores"] >= args.score_thr
                det = {k: v[keep] for k, v in det.items()}
                if args.format == "coco":
                    image_id = index if image_ids is None else image_ids.get(path, image_ids.get(Path(path).name))
                    if image_id is None:
                        log.error("skipped %s: not among the images of --ann %s", path, args.ann)
                        num_failed += 1
                        continue
                    records = detections_to_coco(image_id, det, cat_ids)
                else:
                    records = [to_record(path, w, h, det, class_names)]
                for record in records:
                    out.write(("\n" if first else ",\n") + json.dumps(record))
                    first = False
                if args.save_vis:
                    drawn = draw_detections(original, det["boxes"], det["labels"].tolist(), class_names, det["scores"])
                    save_png(drawn, Path(args.save_vis) / f"{Path(path).stem}.png")
    progress.close()
    out.write("\n]\n")
    if out is not sys.stdout:
        out.close()
    if num_failed:
        log.error("%d of %d images failed", num_failed, len(loader.paths))
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .checkpoints import load_model
    from .export import export_onnx

    model = load_model(args.model, args.weights)
    try:
        path = export_onnx(model, args.output, batch_size=args.batch_size, size=args.size, dynamic=args.dynamic,
                           opset=args.opset, name=getattr(model, "config", None) and model.config.name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(path)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoints import load_model, model_checkpoint, save_checkpoint

    model = load_model(args.model, args.src)
    save_checkpoint(model_checkpoint(model, model.config), args.dst)
    log.info("wrote %s (%s, %d classes)", args.dst, model.config.name, model.num_classes)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import os

    import yaml

    from .checkpoints import load_model
    from .config import ConfigError, config_from_dict
    from .data import CocoDetection
    from .evaluation import evaluate, match_categories

    raw: dict = {"data": {}}
    for item in args.set:  # only the data section matters here; validated like any config
        key, sep, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section != "data" or not name:
            raise ConfigError(f"--set {item!r}: eval takes data.KEY=VALUE, e.g. data.bad_annotations=skip")
        raw["data"][name] = yaml.safe_load(value)
    data_cfg = config_from_dict(raw).data
    outputs = [Path(p) for p in (args.output, args.results) if p]
    for path in outputs:  # before the (long) evaluation, not after it
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
        if path.is_dir() or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"cannot write {path}: it is a folder or not writable")
    dataset = CocoDetection(args.ann, args.images, train=False, bad_annotations=data_cfg.bad_annotations)
    model = load_model(args.model, args.weights, device=args.device)  # after the data: its errors come first
    _apply_fast_mode(model, args)
    cat_ids = match_categories(model.class_names, list(zip(dataset.cat_ids, dataset.class_names)), args.ann)
    if cat_ids is None:
        raise ConfigError(
            f"{args.ann} has {len(dataset.cat_ids)} categories but the model predicts {model.num_classes} classes; "
            "pick the matching --model/--weights"
        )
    metrics, results = evaluate(
        model, dataset, batch_size=args.batch_size, device=args.device, workers=args.workers, classwise=True,
        cat_ids=cat_ids, progress=sys.stderr.isatty(),
    )
    print(f"{'metric':<28} {'value':>7}")
    for key, value in metrics.items():
        print(f"{key:<28} {value:>7.4f}")
    print(f"{len(dataset)} images, {len(results)} detections")
    if args.output:
        report = {**metrics, "num_images": len(dataset), "num_detections": len(results),
                  "model": model.config.name, "weights": args.weights, "ann": str(args.ann),
                  "dtype": args.dtype, "winograd": args.winograd}
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
        log.info("wrote %s", args.output)
    if args.results:
        Path(args.results).write_text(json.dumps(results))
        log.info("wrote %s (%d detections, COCO results format)", args.results, len(results))
    return 0


def _schedule(args: argparse.Namespace) -> dict:
    """TrainConfig overrides from --epochs / --max-iters (--epochs alone drops a config's max_iters)."""
    train: dict = {"epochs": args.epochs, "max_iters": None} if args.epochs else {}
    if args.max_iters:
        train["max_iters"] = args.max_iters
    return train


def _fit(cfg, output_dir, args: argparse.Namespace):
    """Build and run a Trainer -> (trainer, metrics, 0); an interruption or a training error is
    logged and returned as the exit status instead (128 + signal, or 1)."""
    from .engine import Trainer, TrainingError, TrainingInterrupted

    try:
        trainer = Trainer(cfg, output_dir=output_dir, resume=args.resume, device=args.device)
        return trainer, trainer.fit(), 0
    except TrainingInterrupted as e:
        log.warning("%s", e)
        return None, None, 128 + e.signum
    except TrainingError as e:
        log.error("%s", e)
        return None, None, 1


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from .config import load_config

    cfg = load_config(args.config, args.set)
    data = {"train_ann": args.train_ann, "train_images": args.train_images, "val_ann": args.val_ann,
            "val_images": args.val_images, "batch_size": args.batch_size, "workers": args.workers}
    data = {k: v for k, v in data.items() if v is not None}
    if (args.train_ann or args.train_images) and not (args.val_ann or args.val_images):
        data.update(val_ann=None, val_images=None)  # own data: the config's COCO val paths do not apply
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data),
                              train=dataclasses.replace(cfg.train, **_schedule(args)))
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    if not main_process:
        logging.getLogger("sparse_rcnn").setLevel(logging.WARNING)
    _, metrics, status = _fit(cfg, args.output_dir, args)
    if status:
        return status
    for key, value in metrics.items() if main_process else ():
        print(f"{key:<28} {value:>7.4f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the shapes dataset, train the demo config on it, evaluate, draw the results."""
    import dataclasses

    from .config import load_config
    from .synthetic import SyntheticSpec, generate

    out = Path(args.output_dir)
    cfg = load_config(args.config, args.set)
    size = min(cfg.model.test_scale)  # square images that the test scale leaves as they are
    counts = {"num_train": args.num_images, "num_val": max(20, args.num_images // 10)} if args.num_images else {}
    spec = SyntheticSpec(seed=args.seed, image_size=size, min_size=round(size / 8), max_size=round(size * 0.46), **counts)
    data = generate(out / "data", spec)
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, train_ann=str(data.train_ann), train_images=str(data.train_images),
                                 val_ann=str(data.val_ann), val_images=str(data.val_images)),
        train=dataclasses.replace(cfg.train, **_schedule(args)),
    )
    from .visualize import draw_predictions

    trainer, metrics, status = _fit(cfg, out, args)
    if status:
        return status
    draw_predictions(trainer.model, trainer.val_dataset, out / "predictions.png", device=trainer.device)
    print(f"{'metric':<28} {'value':>7}")
    for key, value in metrics.items():
        print(f"{key:<28} {value:>7.4f}")
    print(f"metrics:     {out / 'metrics.json'}")
    print(f"curves:      {out / 'curves.png'}")
    print(f"predictions: {out / 'predictions.png'} (white: ground truth; coloured: predictions with score > 0.3)")
    print(f"model:       {out / 'model_final.pth'} (sparse-rcnn predict --weights {out / 'model_final.pth'} IMAGES)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .benchmark import add_parser as add_benchmark_parser
    from .benchmark import parse_size

    parser = argparse.ArgumentParser(prog="sparse-rcnn", description="Sparse R-CNN object detection")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the named configs and their published AP")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("predict", help="detect objects in images (files or folders)")
    p.add_argument("images", nargs="*", help="image files, folders of images, or @LIST (one path per line)")
    p.add_argument("--model", help="named config (see `sparse-rcnn models`)")
    p.add_argument("--weights", help="checkpoint path or URL (default: the published weights of --model)")
    p.add_argument("--output", help="write the JSON here instead of stdout")
    p.add_argument("--save-vis", metavar="DIR", help="write each image with its boxes drawn to DIR/<stem>.png")
    p.add_argument("--score-thr", type=float, default=0.0, help="drop detections below this score")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    p.add_argument("--list", action="append", metavar="FILE", help="file with one image path per line (or @FILE)")
    p.add_argument("--format", choices=("records", "coco"), default="records",
                   help="records: one entry per image (default); coco: COCO results [{image_id, category_id, bbox, score}]")
    p.add_argument("--ann", help="COCO annotation JSON: image ids by file name, category ids by name (--format coco)")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), help="default: torch, or onnxruntime with --onnx")
    p.add_argument("--onnx", metavar="MODEL.onnx", help="a file from `sparse-rcnn export` (--backend onnxruntime)")
    _add_fast_mode_args(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export the detector to ONNX (normalised padded batch -> top-k boxes)")
    p.add_argument("--model", help="named config (see `sparse-rcnn models`)")
    p.add_argument("--weights", help="checkpoint path or URL (default: the published weights of --model)")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--dynamic", action="store_true", help="any batch size and image size (default: fixed)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, at least 16 (default: 17)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="batch size of a fixed-shape graph")
    p.add_argument("--size", type=parse_size, metavar="HxW",
                   help="padded input size of a fixed-shape graph, multiples of 32 (default: 800x1344)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("convert", help="convert an MMDetection checkpoint to a sparse-rcnn checkpoint")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--model", help="named config the checkpoint belongs to (default: inferred)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("eval", help="COCO box AP of a model on a COCO-format annotation file")
    p.add_argument("--model", help="named config (see `sparse-rcnn models`)")
    p.add_argument("--weights", help="checkpoint path or URL (default: the published weights of --model)")
    p.add_argument("--ann", required=True, help="COCO annotation JSON")
    p.add_argument("--images", required=True, help="folder holding the images named in --ann")
    p.add_argument("--output", help="write the metrics here as JSON")
    p.add_argument("--results", help="write the detections here (COCO results JSON)")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                   help="data option, e.g. data.bad_annotations=skip")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    _add_fast_mode_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "train", help="train a model on COCO-format data (one process, or several under torchrun)",
        description="Train Sparse R-CNN. Several processes: torchrun --nproc_per_node=N --no-python sparse-rcnn train ... "
        "Exit status: 0 done; 1 training diverged (non-finite losses; the last good checkpoint is kept); 2 bad "
        "input; 130 / 143 stopped by SIGINT / SIGTERM after writing a checkpoint (continue with --resume).",
    )
    p.add_argument("--config", required=True, help="named config (see `sparse-rcnn models`) or a YAML file")
    p.add_argument("--train-ann", help="COCO annotation JSON of the training set (default: the config's)")
    p.add_argument("--train-images", help="folder holding the training images")
    p.add_argument("--val-ann", help="COCO annotation JSON to evaluate on after each epoch")
    p.add_argument("--val-images", help="folder holding the validation images")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, help="epochs to train (default: the config's)")
    length.add_argument("--max-iters", type=positive_int, help="stop after this many iterations instead")
    p.add_argument("--batch-size", type=positive_int, help="images per process and step (default: 2)")
    p.add_argument("--workers", type=non_negative_int, help="data loading processes (default: 2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.lr=1e-4 or data.pipeline=multiscale (repeatable)")
    p.add_argument("--output-dir", required=True, help="checkpoints, log.jsonl, curves.png, model_final.pth go here")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --output-dir")
    p.add_argument("--device", type=device_arg, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "demo", help="generate a shapes dataset, train a small model on it from scratch, evaluate, draw",
        description="The built-in demo, trained from scratch (no download). Writes the data, checkpoints, metrics.json, "
        "curves.png and predictions.png to --output-dir.",
    )
    p.add_argument("--output-dir", default="sparse-rcnn-demo", help="where everything goes (default: ./sparse-rcnn-demo)")
    p.add_argument("--config", default="sparse_rcnn_r18_demo_shapes", help="named config or YAML (default: the demo's)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, help="epochs to train (default: the config's)")
    length.add_argument("--max-iters", type=positive_int, help="stop after this many iterations instead")
    p.add_argument("--num-images", type=positive_int, help="training images to generate (validation: a tenth, at least 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated dataset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. train.lr=1e-4 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --output-dir")
    p.add_argument("--device", type=device_arg, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.set_defaults(func=cmd_demo)

    add_benchmark_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr
    )
    from .allocator import keep_freed_memory

    args.malloc = "keep-freed" if keep_freed_memory() else "system"
    try:
        return args.func(args)
    except _user_errors() as e:
        log.error("%s", e)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:  # the reader went away, e.g. `sparse-rcnn predict DIR | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
