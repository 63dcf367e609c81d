"""``sparse-rcnn predict``: files, folders and lists of images -> JSON records or COCO results."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path

import torch

from tqdm import tqdm

from ..checkpoints import load_model
from ..data import expand_image_paths
from ..engine import (
    Processes, StopSignals, all_gather_lists, gather_in_order, init_process_group, iter_predictions, pick_device, to_record,
)
from ..evaluation import coco_category_ids, detections_to_coco
from ..outputs import atomic_write, check_output_dir, check_outputs, unique_names
from ..visualize import draw_detections, save_png
from .args import (
    UsageError, add_fast_mode_args, add_model_args, add_runtime_args, apply_fast_mode, device_arg, non_negative_int,
    onnx_detector, positive_int, score_thr_arg,
)

log = logging.getLogger("sparse_rcnn")


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="detect objects in images (files or folders)")
    p.add_argument("images", nargs="*", help="image files, folders of images, or @LIST (one path per line)")
    add_model_args(p)
    p.add_argument("--output", help="write the JSON here instead of stdout")
    p.add_argument("--save-vis", metavar="DIR", help="write each image with its boxes drawn to DIR/<stem>.png (<stem>-2.png, ... when stems repeat)")
    p.add_argument("--score-thr", type=score_thr_arg, default=0.0,
                   help="keep detections with score >= this; auto: the per-class thresholds stored by eval --save-thresholds")
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--workers", type=non_negative_int, default=0, help="image decoding processes")
    p.add_argument("--list", action="append", metavar="FILE", help="file with one image path per line (or @FILE)")
    p.add_argument("--format", choices=("records", "coco"), default="records",
                   help="records: one entry per image (default); coco: COCO results [{image_id, category_id, bbox, score}]")
    p.add_argument("--ann", help="COCO annotation JSON: image ids by file name, category ids by name (--format coco)")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), help="default: torch, or onnxruntime with --onnx")
    add_runtime_args(p)
    add_fast_mode_args(p)
    p.set_defaults(func=run)


def _read_list_file(path: str) -> list[str]:
    """One image path per line; blank lines and lines starting with # are skipped."""
    try:
        with open(path) as f:
            return [s for line in f if (s := line.strip()) and not s.startswith("#")]
    except OSError as e:
        raise UsageError(f"cannot read the image list {path}: {e.strerror or e}") from None


def _inputs(args: argparse.Namespace) -> list[str]:
    """Files and folders as given; ``@FILE`` and ``--list FILE`` name list files."""
    items: list[str] = []
    for item in args.images:
        items += _read_list_file(item[1:]) if item.startswith("@") else [item]
    for path in args.list or []:
        items += _read_list_file(path)
    if not items:
        raise UsageError("no images given: pass files, folders, @list.txt or --list FILE")
    return items


def _detector(args: argparse.Namespace):
    """The PyTorch model, or with --onnx the exported file on --runtime: each is a ``Detector``."""
    backend = args.backend or ("onnxruntime" if args.onnx or args.runtime else "torch")
    if backend == "torch":
        if args.onnx or args.runtime:
            raise UsageError("--onnx/--runtime need --backend onnxruntime")
        model = load_model(args.model, args.weights, device=args.device)
        apply_fast_mode(model, args)
        return model
    if not args.onnx:
        given = f"--runtime {args.runtime}" if args.runtime else "--backend onnxruntime"
        raise UsageError(f"{given} needs --onnx MODEL.onnx (make one with `sparse-rcnn export`)")
    if args.model or args.weights:
        raise UsageError("--model/--weights are not used with --onnx: the .onnx file holds the model")
    return onnx_detector(args)


def _check_paths(args: argparse.Namespace, paths: list[str]) -> None:
    """Before any work: no output over an input, and every destination writable."""
    lists = [item[1:] for item in args.images if item.startswith("@")] + list(args.list or [])
    weights = args.weights if args.weights and not args.weights.startswith(("http://", "https://")) else None
    check_outputs([args.output], [*paths, weights, args.onnx, args.ann, *lists], folders=[args.save_vis])
    if args.save_vis:
        check_output_dir(args.save_vis)
    if args.output:
        try:
            with tempfile.TemporaryFile(dir=Path(args.output).parent):
                pass
        except OSError as e:
            raise UsageError(f"cannot write --output {args.output}: {e.strerror or e}") from None


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


@contextlib.contextmanager
def _output(path: str | None):
    """stdout, or ``path`` written atomically; a run that stops early leaves ``path`` as it was
    and keeps the records written so far, as valid JSON, in ``<path>.partial``."""
    if not path:
        yield sys.stdout, None
        return
    with atomic_write(path) as target:
        yield target.file, target


def run(args: argparse.Namespace) -> int:
    if args.save_vis and Path(args.save_vis).exists() and not Path(args.save_vis).is_dir():
        raise UsageError(f"--save-vis {args.save_vis}: exists and is not a folder")
    paths = expand_image_paths(_inputs(args))
    _check_paths(args, paths)
    procs = Processes.from_env()  # under torchrun: this process's share of the images
    if procs.distributed and (args.backend or ("onnxruntime" if args.onnx else "torch")) == "torch":
        args.device = str(pick_device(args.device, procs))  # one GPU per process
    detector = _detector(args)
    owns_group = init_process_group(torch.device(args.device if not args.onnx else "cpu"), procs)
    try:
        return _predict(args, detector, paths, procs)
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def _predict(args: argparse.Namespace, detector, paths: list[str], procs: Processes) -> int:
    image_ids = cat_ids = None
    if args.format == "coco":
        cat_ids, image_ids = coco_category_ids(detector.class_names, args.ann)
    vis_names = unique_names(paths) if args.save_vis else []
    records = _Records(args, detector, paths, list(procs.shard(len(paths))), (cat_ids, image_ids), vis_names)
    try:
        with StopSignals(announce=False) as signals:
            if procs.distributed:  # every process predicts its share; the first writes them all, in input order
                mine = list(records.iterate(signals))
                ordered = gather_in_order(mine, procs)
                num_failed = sum(all_gather_lists([records.failed], procs))
                if procs.is_main:
                    with _output(args.output) as (out, _):
                        _write_json(out, (text for _, text in ordered))
            else:
                with _output(args.output) as (out, target):
                    try:
                        _write_json(out, (text for _, text in records.iterate(signals)))
                    except BaseException:
                        if target is not None:
                            target.keep_as(f"{args.output}.partial")
                            log.error("stopped early: %s is unchanged; the records written so far are in %s.partial",
                                      args.output, args.output)
                        raise
                num_failed = records.failed
    except _Stopped as e:
        log.error("%s: stopped", signal.Signals(e.signum).name)
        return 128 + e.signum
    if num_failed:
        if procs.is_main:
            log.error("%d of %d images failed", num_failed, len(paths))
        return 1
    return 0


def _write_json(out, texts) -> None:
    """A JSON list, one record per line; closed (valid JSON) even when ``texts`` stops early."""
    out.write("[")
    written = 0
    try:
        for text in texts:
            out.write(("\n" if not written else ",\n") + text)
            written += 1
    except BaseException:
        with contextlib.suppress(OSError):
            out.write("\n]\n")
        raise
    out.write("\n]\n")


class _Records:
    """Predict the images ``indices`` of ``paths`` (all of them, or one process's share) and make
    their records; ``failed`` counts the images that failed."""

    def __init__(self, args, detector, paths, indices, coco_ids, vis_names) -> None:
        self.args, self.detector, self.paths, self.indices = args, detector, paths, indices
        self.coco_ids, self.vis_names, self.failed = coco_ids, vis_names, 0

    def iterate(self, signals):
        """(input index, record as JSON text) in input order; stops with _Stopped at the first
        image after SIGINT / SIGTERM."""
        args, class_names = self.args, self.detector.class_names
        cat_ids, image_ids = self.coco_ids
        progress = tqdm(total=len(self.indices), unit="img", file=sys.stderr, disable=not sys.stderr.isatty())
        with torch.no_grad():  # nothing per image is kept: each result is yielded, then dropped
            for pred in iter_predictions(self.detector, [self.paths[i] for i in self.indices], batch_size=args.batch_size,
                                         workers=args.workers, score_thr=args.score_thr, keep_images=bool(args.save_vis)):
                if signals.signum is not None:
                    raise _Stopped(signals.signum)
                progress.update(1)
                index = self.indices[pred.index]
                if pred.error is not None:
                    log.error("skipped %s", pred.error)
                    self.failed += 1
                    continue
                if args.format == "coco":
                    image_id = index if image_ids is None else image_ids.get(pred.path, image_ids.get(Path(pred.path).name))
                    if image_id is None:
                        log.error("skipped %s: not among the images of --ann %s", pred.path, args.ann)
                        self.failed += 1
                        continue
                    records = detections_to_coco(image_id, pred.detections, cat_ids)
                else:
                    records = [to_record(pred.path, pred.width, pred.height, pred.detections, class_names)]
                for record in records:
                    yield index, json.dumps(record)
                if args.save_vis:
                    det = pred.detections
                    drawn = draw_detections(pred.image, det["boxes"], det["labels"].tolist(), class_names, det["scores"])
                    save_png(drawn, Path(args.save_vis) / self.vis_names[index])
            if signals.signum is not None:
                raise _Stopped(signals.signum)
        progress.close()
