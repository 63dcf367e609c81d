"""Scoring tracks against ground truth with TrackEval (HOTA, CLEAR MOT, Identity): the library side
of ``sparse-rcnn eval-track``.

TrackEval reads the MOTChallenge layout (see ``mot``); ``evaluate_tracks`` builds it in a temporary
folder from a ground-truth file and a prediction file (one sequence), or from two folders (the
ground-truth folder holds ``<seq>/gt/gt.txt`` and ``<seq>/seqinfo.ini``, the prediction folder
``<seq>.txt``), and runs TrackEval's ``MotChallenge2DBox`` as its ``scripts/run_mot_challenge.py``
does (benchmark MOT17, split train, its preprocessing, IoU 0.5 for CLEAR and Identity). A
ground-truth file of 6 or 7 columns gets "consider" / class / visibility 1; a sequence's length is
its ``seqinfo.ini``'s, else the last frame of either file. Scores are TrackEval's, in percent.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from .mot import MotFormatError, read_mot, read_seq_length, write_seqinfo
from .reader import require

log = logging.getLogger(__name__)
TRACKER = "sparse-rcnn"
BENCHMARK, SPLIT = "MOT17", "train"
# name in our results -> (TrackEval metric, its field); percentages except the counts
FIELDS = {
    "HOTA": ("HOTA", "HOTA"),
    "DetA": ("HOTA", "DetA"),
    "AssA": ("HOTA", "AssA"),
    "LocA": ("HOTA", "LocA"),
    "MOTA": ("CLEAR", "MOTA"),
    "MOTP": ("CLEAR", "MOTP"),
    "IDF1": ("Identity", "IDF1"),
    "IDSW": ("CLEAR", "IDSW"),
    "FP": ("CLEAR", "CLR_FP"),
    "FN": ("CLEAR", "CLR_FN"),
    "GT_IDs": ("Count", "GT_IDs"),
    "IDs": ("Count", "IDs"),
}
COUNTS = ("IDSW", "FP", "FN", "GT_IDs", "IDs")


class TrackEvalError(ValueError):
    """TrackEval refused the files; the message says why."""


@dataclass
class TrackScores:
    """``combined`` scores over all sequences and ``sequences`` each one's: {name: value} with the
    names of ``FIELDS`` (percent, as TrackEval prints them; counts as integers)."""

    combined: dict[str, float]
    sequences: dict[str, dict[str, float]] = field(default_factory=dict)


def format_score(name: str, value: float) -> str:
    """A score as TrackEval's summary prints it: ``1.5g`` of the percentage, counts as integers."""
    return str(int(value)) if name in COUNTS else f"{value:1.5g}"


def _copy_rows(src: Path, dst: Path, min_columns: int, fill: str) -> int:
    """Copy a MOT file (comma separated), padding short rows with ``fill``; checks it first.
    Returns its last frame."""
    rows = read_mot(src)
    lines = []
    for line in src.read_text().splitlines():
        parts = [p.strip() for p in (line.split(",") if "," in line else line.split())]
        if not parts or parts == [""]:
            continue
        if len(parts) < min_columns:
            parts += fill.split(",")[len(parts) - 6 : min_columns - 6]
        lines.append(",".join(parts))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(line + "\n" for line in lines))
    return int(rows.frames.max()) if len(rows.frames) else 0


def _sequences(gt: Path, pred: Path) -> list[tuple[str, Path, Path, Union[Path, None]]]:
    """(name, gt file, prediction file, seqinfo.ini or None) of each sequence."""
    if gt.is_file():
        if not pred.is_file():
            raise TrackEvalError(f"`pred` {pred}: a ground-truth file goes with a prediction file")
        ini = gt.parent.parent / "seqinfo.ini" if gt.parent.name == "gt" else None
        name = gt.parent.parent.name if ini is not None and ini.is_file() else "seq"
        return [(name, gt, pred, ini if ini is not None and ini.is_file() else None)]
    if not gt.is_dir():
        raise TrackEvalError(f"`gt` {gt}: no such file or folder")
    if not pred.is_dir():
        raise TrackEvalError(f"`pred` {pred}: a ground-truth folder goes with a folder of <sequence>.txt")
    seqs = sorted(d for d in gt.iterdir() if (d / "gt" / "gt.txt").is_file())
    if not seqs:
        raise TrackEvalError(f"`gt` {gt}: holds no <sequence>/gt/gt.txt (the MOTChallenge layout)")
    out = []
    for d in seqs:
        if not (pred / f"{d.name}.txt").is_file():
            raise TrackEvalError(f"`pred` {pred}: has no {d.name}.txt for the sequence {d.name}")
        ini = d / "seqinfo.ini"
        out.append((d.name, d / "gt" / "gt.txt", pred / f"{d.name}.txt", ini if ini.is_file() else None))
    return out


def _layout(root: Path, sequences) -> None:
    gt_root = root / "gt" / f"{BENCHMARK}-{SPLIT}"
    data = root / "trackers" / f"{BENCHMARK}-{SPLIT}" / TRACKER / "data"
    for name, gt, pred, ini in sequences:
        last = max(_copy_rows(gt, gt_root / name / "gt" / "gt.txt", 9, "1,1,1"), 0)
        last = max(last, _copy_rows(pred, data / f"{name}.txt", 10, "1,-1,-1,-1"))
        length = read_seq_length(ini) if ini is not None else last
        if length < last:
            raise MotFormatError(f"{ini}: seqLength {length} is below the files' last frame {last}")
        write_seqinfo(gt_root / name / "seqinfo.ini", name, max(length, 1), 0, 0, 0)
    (root / "gt" / "seqmaps").mkdir(parents=True, exist_ok=True)
    names = "".join(f"{name}\n" for name, *_ in sequences)
    (root / "gt" / "seqmaps" / f"{BENCHMARK}-{SPLIT}.txt").write_text("name\n" + names)


def evaluate_tracks(gt: Union[str, Path], pred: Union[str, Path]) -> TrackScores:
    """HOTA, DetA, AssA, MOTA, IDF1, ID switches, ... of the tracks ``pred`` against ``gt`` (two
    MOT files, or two folders in the MOTChallenge layout), computed by TrackEval."""
    trackeval = require("trackeval", "trackeval")
    sequences = _sequences(Path(gt), Path(pred))
    with tempfile.TemporaryDirectory(prefix="sparse-rcnn-trackeval-") as tmp:
        root = Path(tmp)
        _layout(root, sequences)
        eval_config = {
            **trackeval.Evaluator.get_default_eval_config(),
            "USE_PARALLEL": False,
            "BREAK_ON_ERROR": True,
            "LOG_ON_ERROR": None,
            "PRINT_RESULTS": False,
            "PRINT_CONFIG": False,
            "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False,
            "OUTPUT_DETAILED": False,
            "PLOT_CURVES": False,
        }
        dataset_config = {
            **trackeval.datasets.MotChallenge2DBox.get_default_dataset_config(),
            "GT_FOLDER": str(root / "gt"),
            "TRACKERS_FOLDER": str(root / "trackers"),
            "OUTPUT_FOLDER": str(root / "out"),
            "TRACKERS_TO_EVAL": [TRACKER],
            "BENCHMARK": BENCHMARK,
            "SPLIT_TO_EVAL": SPLIT,
            "PRINT_CONFIG": False,
        }
        metrics_config = {"METRICS": ["HOTA", "CLEAR", "Identity"], "THRESHOLD": 0.5, "PRINT_CONFIG": False}
        metrics = [
            m(metrics_config) for m in (trackeval.metrics.HOTA, trackeval.metrics.CLEAR, trackeval.metrics.Identity)
        ]
        try:
            with contextlib.redirect_stdout(io.StringIO()) as said:  # TrackEval prints its progress
                evaluator = trackeval.Evaluator(eval_config)
                results, _ = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(dataset_config)], metrics)
            log.debug("TrackEval: %s", said.getvalue())
        except trackeval.utils.TrackEvalException as e:
            raise TrackEvalError(f"TrackEval: {str(e).splitlines()[0]}") from None
    per_seq = results["MotChallenge2DBox"][TRACKER]
    scores = {name: _pick(res["pedestrian"]) for name, res in per_seq.items()}
    combined = scores.pop("COMBINED_SEQ")
    return TrackScores(combined, scores)


def _pick(res: dict) -> dict[str, float]:
    out = {}
    for name, (metric, key) in FIELDS.items():
        if metric not in res:
            continue
        value = res[metric][key]
        out[name] = int(value) if name in COUNTS else float(100 * np.mean(value))
    return out
