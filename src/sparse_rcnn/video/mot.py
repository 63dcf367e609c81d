"""MOTChallenge text files: one box per line ``frame,id,x,y,w,h,score,-1,-1,-1`` with 1-based
frame numbers, box left/top/width/height in pixels (3 decimals; score 5) (MOT's own convention: pixels counted from 1,
which we do not shift: ground truth and predictions written here share the same origin).

Ground truth of the MOTChallenge layout uses the 7th column as "consider" (1) / "ignore" (0) and the
8th as a class (1 = pedestrian for MOT17); ``write_ground_truth`` writes ``frame,id,x,y,w,h,1,1,1``
so TrackEval's MOT17 reader takes every box. The layout TrackEval reads for a benchmark::

    <gt>/<BENCH>-<split>/<seq>/gt/gt.txt      <gt>/<BENCH>-<split>/<seq>/seqinfo.ini
    <gt>/seqmaps/<BENCH>-<split>.txt          <trackers>/<BENCH>-<split>/<name>/data/<seq>.txt
"""

from __future__ import annotations

import configparser
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Union

import numpy as np


class MotFormatError(ValueError):
    """A MOTChallenge text file cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class MotRows:
    """The rows of one MOT file as arrays: ``frames`` (n,) 1-based, ``ids`` (n,), ``boxes`` (n, 4)
    x, y, w, h, ``scores`` (n,) (the 7th column), ``classes`` (n,) (the 8th, -1 when absent)."""

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


def record_rows(record: dict) -> list[str]:
    """MOT lines of one frame record's tracked detections (frame numbers become 1-based)."""
    rows = []
    for d in record["detections"]:
        if d.get("track_id") is None:
            continue
        x0, y0, x1, y1 = d["box"]
        box = f"{x0:.3f},{y0:.3f},{x1 - x0:.3f},{y1 - y0:.3f}"
        rows.append(f"{record['frame'] + 1},{d['track_id']},{box},{d['score']:.5f},-1,-1,-1")
    return rows


def write_ground_truth(out: IO[str], tracks: Iterable[tuple[int, int, tuple[float, float, float, float]]]) -> None:
    """``(frame 0-based, track id, (x, y, w, h))`` -> MOT ground truth lines ``f,id,x,y,w,h,1,1,1``."""
    for frame, track_id, (x, y, w, h) in tracks:
        out.write(f"{frame + 1},{track_id},{x:g},{y:g},{w:g},{h:g},1,1,1\n")


def read_mot(path: Union[str, Path]) -> MotRows:
    """Read a MOT text file (comma or space separated, at least 6 columns)."""
    frames, ids, boxes, scores, classes = [], [], [], [], []
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise MotFormatError(f"{path}: cannot read: {e.strerror or e}") from None
    dialect = "," if "," in text.split("\n", 1)[0] or not text.strip() else " "
    for n, row in enumerate(csv.reader(text.splitlines(), delimiter=dialect), 1):
        row = [c for c in row if c.strip()] if dialect == " " else row
        if not row:
            continue
        try:
            values = [float(c) for c in row]
        except ValueError:
            raise MotFormatError(f"{path}:{n}: expected numbers frame,id,x,y,w,h[,score,...], got {row!r}") from None
        if len(values) < 6:
            raise MotFormatError(f"{path}:{n}: expected at least 6 columns frame,id,x,y,w,h, got {len(values)}")
        if values[0] < 1 or values[0] != int(values[0]):
            raise MotFormatError(f"{path}:{n}: frame numbers are whole and start at 1, got {row[0]}")
        frames.append(int(values[0]))
        ids.append(int(values[1]))
        boxes.append(values[2:6])
        scores.append(values[6] if len(values) > 6 else 1.0)
        classes.append(int(values[7]) if len(values) > 7 else -1)
    return MotRows(
        np.asarray(frames, dtype=np.int64),
        np.asarray(ids, dtype=np.int64),
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        np.asarray(scores, dtype=np.float64),
        np.asarray(classes, dtype=np.int64),
    )


def write_seqinfo(path: Union[str, Path], name: str, length: int, width: int, height: int, fps: float) -> None:
    """``seqinfo.ini`` of a sequence, as MOTChallenge writes it (TrackEval reads ``seqLength``)."""
    ini = configparser.ConfigParser()
    ini.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case (configparser's documented way)
    ini["Sequence"] = {
        "name": name,
        "imDir": "img1",
        "frameRate": f"{fps:g}",
        "seqLength": str(length),
        "imWidth": str(width),
        "imHeight": str(height),
        "imExt": ".png",
    }
    with open(path, "w") as f:
        ini.write(f, space_around_delimiters=False)


def read_seq_length(path: Union[str, Path]) -> int:
    """``seqLength`` of a ``seqinfo.ini``."""
    ini = configparser.ConfigParser()
    try:
        ini.read_string(Path(path).read_text())
        return int(ini["Sequence"]["seqLength"])
    except (OSError, KeyError, ValueError, configparser.Error) as e:
        raise MotFormatError(f"{path}: no [Sequence] seqLength ({e})") from None
