"""Tracking (the trackers adapter, thresholds from the model), MOT rows, and eval-track's scores."""

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")
pytest.importorskip("trackers")
pytest.importorskip("trackeval")

from sparse_rcnn.data import ClipSpec, render_clip  # noqa: E402
from sparse_rcnn.models import load_model  # noqa: E402
from sparse_rcnn.video import (  # noqa: E402
    Tracker,
    TrackSettings,
    evaluate_tracks,
    make_clip,
    probe,
    read_mot,
    track_clip,
)

SPEC = ClipSpec(num_frames=50, width=96, height=72, num_objects=4, min_size=12, max_size=20, seed=4)


class _Model:
    class_names = ["a", "b", "c", "d"]

    def __init__(self, thresholds=None):
        self.score_thresholds = thresholds


def test_thresholds_come_from_the_models_stored_ones_and_flags_replace_them():
    stored = {"global": 0.3, "per_class": [0.45, 0.6], "class_names": ["b", "a"], "source": "val"}
    s = TrackSettings.for_detector(_Model(stored))
    assert s.high == (0.6, 0.45, 0.3, 0.3) and s.new == s.high
    assert s.low == pytest.approx([0.2, 0.15, 0.1, 0.1])
    s = TrackSettings.for_detector(_Model(stored), high=0.5, low=0.05, match_thr=0.3, buffer=10)
    assert (s.high, s.low, s.match_thr, s.buffer) == ((0.5,) * 4, (0.05,) * 4, 0.3, 10)
    assert TrackSettings.for_detector(_Model()).high == (0.3,) * 4
    with pytest.raises(ValueError, match="`track_thr`"):
        TrackSettings.for_detector(_Model(), high=0.2, low=0.4)
    assert TrackSettings.for_detector(_Model()).nms == 0.5 and not TrackSettings.for_detector(_Model()).per_class
    s = TrackSettings.for_detector(_Model(), nms=0, per_class=True)
    assert (s.nms, s.per_class) == (0.0, True)
    with pytest.raises(ValueError, match="`track_nms`"):
        TrackSettings.for_detector(_Model(), nms=1.5)


def _ground_truth_detections(spec):
    for index, (_, objects) in enumerate(render_clip(spec)):
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (o.box for o in objects)], float).reshape(-1, 4)
        det = {
            "boxes": boxes,
            "scores": np.full(len(objects), 0.5),
            "labels": np.array([o.label for o in objects], dtype=np.int64),
        }
        yield index / spec.fps, det, [o.track_id for o in objects]


def test_tracking_ground_truth_boxes_gives_one_id_per_object():
    tracker = Tracker(TrackSettings(high=(0.4,), new=(0.4,), low=(0.1,)), 4, SPEC.fps)
    pairs, tracked_boxes, boxes = set(), 0, 0
    for time, det, gt_ids in _ground_truth_detections(SPEC):
        out = tracker.update(det, time)
        boxes += len(gt_ids)
        rows = [int(np.flatnonzero((det["boxes"] == b.numpy()).all(1))[0]) for b in out["boxes"]]
        pairs |= {(int(t), gt_ids[r]) for t, r in zip(out["track_ids"], rows)}
        tracked_boxes += len(rows)
        assert (out["track_ids"] > 0).all()
    ids = [t for t, _ in pairs]
    objects = [g for _, g in pairs]
    assert len(set(ids)) == len(ids) and len(set(objects)) == len(objects)  # no switch, no split
    assert tracked_boxes >= 0.9 * boxes


def _duplicated_object(frames=12):
    """One square moving right, reported three times a frame (as Sparse R-CNN does): its best box
    under a class that alternates between 0 and 1, a shifted copy under the other class, and a
    lower-scored copy under the best box's class."""
    for f in range(frames):
        x = 10.0 + 2 * f
        box = [x, 20.0, x + 20, 40.0]
        best = f % 2
        det = {
            "boxes": np.array([box, [x + 1, 21, x + 21, 41], [x - 1, 19, x + 19, 39]], float),
            "scores": np.array([0.6, 0.5, 0.45]),
            "labels": np.array([best, 1 - best, best], dtype=np.int64),
        }
        yield f / 25, det


def _ids(settings, frames=12):
    tracker = Tracker(settings, 2, 25.0)
    seen = [tracker.update(det, t)["track_ids"].tolist() for t, det in _duplicated_object(frames)]
    return seen


def test_duplicates_of_one_object_give_one_track():
    ids = _ids(TrackSettings(high=(0.4,), new=(0.4,), low=(0.1,)))
    assert all(len(frame) == 1 for frame in ids[2:])  # confirmed after min_frames; one box a frame
    assert len({i for frame in ids for i in frame}) == 1  # the class flicker does not break the track
    no_nms = _ids(TrackSettings(high=(0.4,), new=(0.4,), low=(0.1,), nms=0.0))
    assert max(len(frame) for frame in no_nms) == 3  # without NMS every copy is a track
    per_class = _ids(TrackSettings(high=(0.4,), new=(0.4,), low=(0.1,), per_class=True))
    assert max(len(frame) for frame in per_class) == 2  # class-wise NMS: one box per class remains


def test_each_class_keeps_its_own_thresholds_with_one_tracker():
    # class 0's high threshold is 0.5, class 1's 0.3: a score of 0.4 starts a track in class 1 only
    settings = TrackSettings(high=(0.5, 0.3), new=(0.5, 0.3), low=(0.2, 0.1))
    for label, expected in ((0, 0), (1, 1)):
        tracker = Tracker(settings, 2, 25.0)
        det = {"boxes": np.array([[10.0, 10, 30, 30]]), "scores": np.array([0.4]), "labels": np.array([label])}
        tracked = [len(tracker.update(det, f / 25)["track_ids"]) for f in range(5)]
        assert tracked[-1] == expected
    with pytest.raises(ValueError, match="`nms`"):
        TrackSettings(nms=1.5)
    with pytest.raises(ValueError, match="ratio"):
        TrackSettings(high=(0.5, 0.3), new=(0.5, 0.6))


def test_track_flag_gives_ids_and_mot_rows_match_the_json(tmp_path, tiny_weights, run_cli):
    make_clip(tmp_path / "c.mkv", SPEC, lossless=True)
    flags = ["--weights", tiny_weights, "--track", "--track-high-thr", "0.05", "--track-thr", "0.02"]
    rc, _ = run_cli(["predict", str(tmp_path / "c.mkv"), *flags, "--output", str(tmp_path / "t.jsonl")])
    assert rc == 0
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    dets = [(r["frame"], d) for r in records for d in r["detections"]]
    assert dets and all(d["track_id"] > 0 and d["score"] >= 0.02 for _, d in dets)
    rc, _ = run_cli(
        ["predict", str(tmp_path / "c.mkv"), *flags, "--format", "mot", "--output", str(tmp_path / "t.txt")]
    )
    assert rc == 0
    rows = read_mot(tmp_path / "t.txt")
    assert len(rows.frames) == len(dets)
    for k, (frame, d) in enumerate(dets):
        x0, y0, x1, y1 = d["box"]
        assert (rows.frames[k], rows.ids[k]) == (frame + 1, d["track_id"])
        assert rows.boxes[k] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=1e-3)
        assert rows.scores[k] == pytest.approx(d["score"], abs=1e-5)


def test_track_clip_writes_scored_tracks_an_annotated_clip_and_a_strip(tmp_path, tiny_weights):
    model = load_model(weights=tiny_weights)
    spec = ClipSpec(num_frames=12, width=80, height=60, num_objects=3, min_size=10, max_size=18, seed=9)
    settings = TrackSettings(high=(0.02,), new=(0.02,), low=(0.01,))  # a random model's scores are low
    result = track_clip(model, tmp_path / "v", spec, track=settings, shown=[2, 9])
    assert result.strip_frames == (2, 9) and result.video == tmp_path / "v" / "clip.mp4"
    rows = read_mot(result.tracks)
    assert len(rows.frames) and (rows.ids > 0).all()  # thresholds this low: the random boxes are tracked
    again = evaluate_tracks(result.gt, result.tracks).combined
    assert json.loads(result.scores_file.read_text())["combined"] == again == result.scores.combined
    assert result.summary().startswith(f"HOTA {again['HOTA']:.1f}  MOTA {again['MOTA']:.1f}")
    info = probe(result.annotated)
    assert (info.width, info.height, info.frames) == (160, 120, 12)  # twice the clip's size
    assert Image.open(result.strip).size == (2 * 160 + 4, 120)


def _write(path, rows):
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))


def test_eval_track_scores_perfect_and_swapped_tracks(tmp_path, run_cli, capsys):
    gt = [(f, i, 10 + 30 * i + f, 20, 15, 15) for f in range(1, 21) for i in (1, 2)]
    _write(tmp_path / "gt.txt", [(*r, 1, 1, 1) for r in gt])
    _write(tmp_path / "same.txt", [(*r, 0.9, -1, -1, -1) for r in gt])
    perfect = evaluate_tracks(tmp_path / "gt.txt", tmp_path / "same.txt").combined
    assert (perfect["HOTA"], perfect["MOTA"], perfect["IDF1"], perfect["IDSW"]) == (100.0, 100.0, 100.0, 0)
    swapped = [(f, 3 - i if f > 10 else i, *rest) for f, i, *rest in gt]  # the two ids swap once, at frame 11
    _write(tmp_path / "swap.txt", [(*r, 0.9, -1, -1, -1) for r in swapped])
    rc, _ = run_cli(["eval-track", "--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "swap.txt"),
                     "--output", str(tmp_path / "s.json")])  # fmt: skip
    assert rc == 0
    scores = json.loads((tmp_path / "s.json").read_text())["combined"]
    assert scores["IDSW"] == 2 and scores["MOTA"] == pytest.approx(100 * (1 - 2 / 40))
    assert scores["IDF1"] == pytest.approx(50.0) and scores["DetA"] == pytest.approx(100.0)
    assert "COMBINED" in capsys.readouterr().out


def test_eval_track_on_folders_and_bad_files_are_one_line(tmp_path, run_cli):
    for seq in ("s1", "s2"):
        (tmp_path / "gt" / seq / "gt").mkdir(parents=True)
        _write(tmp_path / "gt" / seq / "gt" / "gt.txt", [(f, 1, 5, 5, 10, 10) for f in range(1, 6)])
        (tmp_path / "gt" / seq / "seqinfo.ini").write_text("[Sequence]\nname=x\nseqLength=8\n")
    (tmp_path / "pred").mkdir()
    _write(tmp_path / "pred" / "s1.txt", [(f, 7, 5, 5, 10, 10, 1, -1, -1, -1) for f in range(1, 6)])
    args = ["eval-track", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]
    rc, errors = run_cli(args)
    assert rc == 2 and errors == [f"--pred {tmp_path / 'pred'}: has no s2.txt for the sequence s2"]
    _write(tmp_path / "pred" / "s2.txt", [(f, 3, 5, 5, 10, 10, 1, -1, -1, -1) for f in range(1, 4)])
    rc, errors = run_cli([*args, "--output", str(tmp_path / "o.json")])
    assert rc == 0, errors
    result = json.loads((tmp_path / "o.json").read_text())
    assert set(result["sequences"]) == {"s1", "s2"} and result["sequences"]["s2"]["FN"] == 2
    (tmp_path / "bad.txt").write_text("1,2,x,4,5,6\n")
    rc, errors = run_cli(["eval-track", "--gt", str(tmp_path / "bad.txt"), "--pred", str(tmp_path / "bad.txt")])
    assert rc == 2 and len(errors) == 1 and "bad.txt:1: expected numbers" in errors[0]
