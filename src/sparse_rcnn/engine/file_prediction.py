"""Prediction over many image files: the library side of ``sparse-rcnn predict``.

Records come out in input order as one JSON list (one record per line), written to a file
atomically: a run stopped early (signal, late error) leaves the previous file as it was and keeps
the records written so far, as valid JSON, in ``<output>.partial``. Each image can be drawn with
its detections. Under torchrun every process predicts its share of the files
(``Processes.shard``) and the first one writes them all, in input order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Optional, Sequence, Union

from ..common import Processes, all_gather_lists, atomic_write, gather_in_order, unique_names
from ..data import expand_image_paths
from ..evaluation import detections_to_coco
from ..inference import ImageFiles, iter_predictions
from ..models.detector import Detector, ScoreThr, resolve_score_thr, to_record
from ..visualize import draw_detections, save_png
from .faults import StopSignals

log = logging.getLogger(__name__)

# COCO results instead of records: (category id of each label, image id by file name or None)
CocoIds = tuple[Sequence[int], Optional[dict[str, int]]]


class PredictionStopped(Exception):
    """SIGINT / SIGTERM stopped the run at the next image; ``signum`` names the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@dataclass(frozen=True)
class PredictionSummary:
    """How a run over ``images`` files went; ``failed`` counts every process's failures."""

    images: int
    failed: int


def predict_files(
    detector: Detector,
    paths: Sequence[str],
    output: Union[str, Path, None] = None,
    *,
    batch_size: int = 1,
    workers: int = 0,
    pad: str = "bucket",
    score_thr: ScoreThr = 0.0,
    coco_ids: Optional[CocoIds] = None,
    vis_dir: Union[str, Path, None] = None,
    processes: Optional[Processes] = None,
    stream: Optional[IO[str]] = None,
    progress: bool = False,
) -> PredictionSummary:
    """Predict ``paths`` and write their records (``to_record``), or COCO results with
    ``coco_ids``, as one JSON list to ``output`` (atomically), else to ``stream`` (stdout).

    A file that cannot be read or decoded is logged and counted in ``failed``; the others go on.
    Folders among ``paths`` stand for their images. batch_size, workers, pad: as
    ``inference.iter_predictions``.
    vis_dir: each image drawn with its detections as ``<stem>.png`` (``-2``, ... when stems repeat).
    processes: this process's place under torchrun (``Processes.from_env()``, with the process
        group initialised): it predicts its share, the first process writes everything.
    progress: a progress bar on stderr (when it is a terminal).
    Raises ``PredictionStopped`` on SIGINT / SIGTERM (between two images).
    """
    procs = processes or Processes()
    paths = expand_image_paths(paths)
    thresholds = resolve_score_thr(detector, score_thr)  # "auto" without thresholds: refused before any output
    records = _Records(
        detector,
        paths,
        procs,
        batch_size=batch_size,
        workers=workers,
        pad=pad,
        score_thr=thresholds,
        coco_ids=coco_ids,
        vis_dir=vis_dir,
        progress=progress,
    )
    with StopSignals(announce=False) as signals:
        if procs.distributed:
            ordered = gather_in_order(list(records.iterate(signals)), procs)
            failed = sum(all_gather_lists([records.failed], procs))
            if procs.is_main:
                with _destination(output, stream) as (out, _):
                    _write_json(out, (text for _, text in ordered))
            return PredictionSummary(len(paths), failed)
        with _destination(output, stream) as (out, target):
            try:
                _write_json(out, (text for _, text in records.iterate(signals)))
            except BaseException:
                if target is not None:
                    target.keep_as(f"{output}.partial")
                    log.error(
                        "stopped early: %s is unchanged; the records written so far are in %s.partial", output, output
                    )
                raise
    return PredictionSummary(len(paths), records.failed)


@contextlib.contextmanager
def _destination(output, stream):
    """(file to write, its ``AtomicFile`` or None): ``output`` written atomically, or ``stream``."""
    if output is None:
        yield stream or sys.stdout, None
        return
    with atomic_write(output) as target:
        yield target.file, target


def _write_json(out: IO[str], texts) -> None:
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
    """The records of ``paths`` (this process's share under torchrun); ``failed`` counts the
    images that failed."""

    def __init__(
        self, detector, paths, procs, *, batch_size, workers, pad, score_thr, coco_ids, vis_dir, progress
    ) -> None:
        self.detector, self.paths, self.procs = detector, paths, procs
        self.batch_size, self.workers, self.pad, self.score_thr = batch_size, workers, pad, score_thr
        self.coco_ids, self.vis_dir = coco_ids, Path(vis_dir) if vis_dir is not None else None
        self.vis_names = unique_names(paths) if vis_dir is not None else []
        self.progress, self.failed = progress, 0

    def iterate(self, signals: StopSignals) -> Iterator[tuple[int, str]]:
        """(input index, record as JSON text) in input order; raises PredictionStopped at the first
        image after SIGINT / SIGTERM."""
        predictions = iter_predictions(
            self.detector,
            ImageFiles(self.paths, self.detector.test_scale),
            batch_size=self.batch_size,
            workers=self.workers,
            pad=self.pad,
            score_thr=self.score_thr,
            keep_images=self.vis_dir is not None,
            processes=self.procs,
            progress=self.progress,
        )
        for pred in predictions:  # nothing per image is kept: each result is yielded, then dropped
            if signals.signum is not None:
                raise PredictionStopped(signals.signum)
            if pred.error is not None:
                log.error("skipped %s", pred.error)
                self.failed += 1
                continue
            records = self._records(pred)
            if records is None:
                self.failed += 1
                continue
            for record in records:
                yield pred.index, json.dumps(record)
            if self.vis_dir is not None:
                det = pred.detections
                assert det is not None and pred.image is not None  # kept for the drawings
                drawn = draw_detections(
                    pred.image, det["boxes"], det["labels"].tolist(), self.detector.class_names, det["scores"]
                )
                save_png(drawn, self.vis_dir / self.vis_names[pred.index])
        if signals.signum is not None:
            raise PredictionStopped(signals.signum)

    def _records(self, pred) -> Optional[list[dict]]:
        """One record, or the image's COCO results; None (logged) for an image the annotations lack."""
        if self.coco_ids is None:
            return [to_record(pred.key, pred.width, pred.height, pred.detections, self.detector.class_names)]
        cat_ids, image_ids = self.coco_ids
        image_id = pred.index if image_ids is None else image_ids.get(pred.key, image_ids.get(Path(pred.key).name))
        if image_id is None:
            log.error("skipped %s: not among the images of the annotation file", pred.key)
            return None
        return detections_to_coco(image_id, pred.detections, cat_ids)
