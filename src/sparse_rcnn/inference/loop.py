"""The one inference loop over many images, used by ``predict``, evaluation, the service and video.

Images come from a source (``sources``: files, a dataset, a stream), are decoded and resized in
``DataLoader`` workers while the detector runs, and leave as ``Prediction``s in input order;
nothing is kept once yielded, so memory stays flat over any number of images.

Batching (``pad``): ``"bucket"`` (the default) puts into one forward only consecutive images whose
resized, padded input has the same shape (zero padding up to a bigger neighbour would change an
image's features near the border) and asks the detector for ``independent`` answers, so every
answer is bit-identical to the image's at batch 1. ``"largest"`` pads every batch to its largest
image and shares the whole forward, as MMDetection does: the parity checks, and the fastest batches
for a small model on images of one size (equal to batch 1 up to float rounding).
Under torchrun a map-style source is sharded (``Processes.shard``); ``stop`` is called between
batches and may raise to end the run; ``progress`` shows a bar on a terminal.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sized, cast

import torch
from torch import Tensor
from tqdm import tqdm

from ..common import Processes
from ..data.resize import padded_size
from ..models.detector import Detector, ScoreThr, keep_scores, resolve_score_thr
from .sources import Item

PAD_MODES = ("bucket", "largest")


@dataclass
class Prediction:
    """One input's outcome: ``detections`` (CPU tensors ``boxes`` (k, 4) in the image's pixels,
    ``scores``, ``labels``) or the ``error`` that stopped it; ``image`` is the decoded original
    (3, H, W) uint8 when asked for (to draw on). ``index`` and ``key`` are the source item's."""

    index: int
    key: Any
    width: int = 0
    height: int = 0
    detections: Optional[dict[str, Tensor]] = None
    error: Optional[str] = None
    image: Optional[Tensor] = None


def iter_predictions(
    detector: Detector,
    source: torch.utils.data.Dataset,
    *,
    batch_size: int = 1,
    workers: int = 0,
    score_thr: ScoreThr = 0.0,
    pad: str = "bucket",
    keep_images: bool = False,
    processes: Optional[Processes] = None,
    stop: Optional[Callable[[], None]] = None,
    progress: bool = False,
    desc: str = "predict",
) -> Iterator[Prediction]:
    """Predict every item of ``source`` (a ``sources`` dataset yielding ``Item``s) with up to
    ``batch_size`` images per forward, in input order. An item that could not be read is yielded
    with its ``error``; the others go on. ``processes``: predict only this process's share."""
    if pad not in PAD_MODES:
        raise ValueError(f"`pad` must be one of {PAD_MODES}, got {pad!r}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    thr = resolve_score_thr(detector, score_thr)
    stream = isinstance(source, torch.utils.data.IterableDataset)
    if processes is not None and processes.distributed and not stream:
        source = torch.utils.data.Subset(source, list(processes.shard(len(cast(Sized, source)))))
    workers = 0 if stream else workers
    loader = torch.utils.data.DataLoader(
        source, batch_size=None, num_workers=workers, prefetch_factor=2 * batch_size if workers else None
    )
    bar = tqdm(
        total=None if stream else len(cast(Sized, source)),
        desc=desc,
        unit="img",
        leave=False,
        file=sys.stderr,
        disable=not (progress and sys.stderr.isatty()),
    )
    with torch.no_grad():
        for batch in group_batches(loader, batch_size, pad=pad, size_divisor=detector.size_divisor):
            if stop is not None:
                stop()
            yield from _predict_batch(detector, batch, thr, keep_images, pad)
            bar.update(len(batch))
    bar.close()
    if stop is not None:
        stop()


def group_batches(items: Iterable[Item], batch_size: int, *, pad: str, size_divisor: int) -> Iterator[list[Item]]:
    """Consecutive ``items`` in batches of up to ``batch_size``; with ``pad="bucket"`` a batch holds
    only images of one padded shape (a new shape starts a new batch). Unreadable items ride along."""
    batch: list[Item] = []
    shape = None
    for item in items:
        if item.error is None and pad == "bucket":
            assert item.resized is not None  # read without error
            item_shape = padded_size([(item.resized.shape[-2], item.resized.shape[-1])], size_divisor)
            if shape is not None and item_shape != shape and batch:
                yield batch
                batch = []
            shape = item_shape
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch, shape = [], None
    if batch:
        yield batch


def _predict_batch(
    detector: Detector, batch: list[Item], thr: Any, keep_images: bool, pad: str
) -> Iterator[Prediction]:
    ok = [item for item in batch if item.error is None]
    resized = [cast(Tensor, item.resized) for item in ok]  # read without error: resized, with its factor
    factors = [cast("tuple[float, float]", item.factor) for item in ok]
    dets = detector.detect_resized(resized, factors, independent=pad == "bucket") if ok else []
    found = {item.index: det for item, det in zip(ok, dets)}
    for item in batch:
        if item.error is not None:
            yield Prediction(item.index, item.key, error=item.error)
            continue
        assert item.original is not None  # read without error
        h, w = item.original.shape[-2:]
        image = item.original if keep_images else None
        yield Prediction(item.index, item.key, int(w), int(h), keep_scores(found[item.index], thr), image=image)
