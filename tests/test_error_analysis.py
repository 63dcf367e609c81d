"""Error analysis: the confusion matrix on hand-made cases, PR curves from COCOeval, F1-optimal thresholds."""

import contextlib
import io

import numpy as np
import pytest

from sparse_rcnn.data import CocoDetection
from sparse_rcnn.evaluation import analyse, analyse_errors, choose_thresholds, matches_from_cocoeval, run_cocoeval
from sparse_rcnn.evaluation.thresholds import f1_at, f1_table
from test_data import write_coco

CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
BG = 2  # background row / column of a two-class matrix


def evaluated(tmp_path, anns, dets, images=((1, 100, 100),)):
    """COCOeval of detections [(image, category, [x, y, w, h], score)] against ``anns``
    [(id, image, category, box, extra)]."""
    ds = CocoDetection(*write_coco(tmp_path, list(images), anns, CATS), train=False)
    results = [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in dets]
    return run_cocoeval(ds.coco, results, image_ids=ds.image_ids, cat_ids=ds.cat_ids)


A = [10.0, 10.0, 30.0, 30.0]  # an object
A_NEAR = [12.0, 11.0, 30.0, 30.0]  # IoU ~0.85 with A
B = [60.0, 60.0, 30.0, 30.0]  # another object, no overlap with A
NOWHERE = [0.0, 70.0, 20.0, 20.0]


@pytest.mark.parametrize(
    "case, anns, dets, expected",
    [
        ("hit", [(1, 1, 1, A, {})], [(1, 1, A_NEAR, 0.9)], {(0, 0): 1}),
        ("miss", [(1, 1, 1, A, {})], [], {(0, BG): 1}),
        ("false alarm", [(1, 1, 1, A, {})], [(1, 1, A, 0.9), (1, 2, NOWHERE, 0.8)], {(0, 0): 1, (BG, 1): 1}),
        ("wrong class", [(1, 1, 1, A, {})], [(1, 2, A_NEAR, 0.9)], {(0, 1): 1}),
        (
            "two predictions on one object",
            [(1, 1, 1, A, {})],
            [(1, 1, A, 0.9), (1, 1, A_NEAR, 0.8)],
            {(0, 0): 1, (BG, 0): 1},
        ),
        (
            "two classes on one object",
            [(1, 1, 1, A, {})],
            [(1, 1, A, 0.9), (1, 2, A_NEAR, 0.8)],
            {(0, 0): 1, (BG, 1): 1},
        ),
        (
            "crowd ignored",
            [(1, 1, 1, A, {}), (2, 1, 1, B, {"iscrowd": 1})],
            [(1, 1, A, 0.9), (1, 1, B, 0.8)],
            {(0, 0): 1},
        ),
        ("crowd never missed", [(1, 1, 2, B, {"iscrowd": 1})], [(1, 1, A, 0.9)], {(BG, 0): 1}),
        ("below the threshold", [(1, 1, 1, A, {})], [(1, 1, A, 0.2), (1, 2, NOWHERE, 0.1)], {(0, BG): 1}),
    ],
)
def test_confusion_matrix_counts_hand_made_cases(tmp_path, case, anns, dets, expected):
    if not dets:  # COCOeval needs one result: put it on another image, where it is a false alarm below the cut
        dets = [(2, 2, NOWHERE, 0.01)]
    coco_eval = evaluated(tmp_path, anns, dets, images=((1, 100, 100), (2, 100, 100)))
    matrix, _ = analyse_errors(matches_from_cocoeval(coco_eval), 0.3)
    want = np.zeros((3, 3), dtype=np.int64)
    for (r, c), n in expected.items():
        want[r, c] = n
    assert matrix.tolist() == want.tolist(), case


def test_confusion_matrix_rows_and_columns_add_up_to_coco_counts(tmp_path):
    """Random scene: every non-crowd box is in its class's row once, every kept detection in its
    column once, and the diagonal is COCO's true positives at IoU 0.5."""
    rng = np.random.default_rng(0)
    anns, dets = [], []
    for image in range(1, 7):
        for _ in range(int(rng.integers(1, 5))):
            x, y = rng.uniform(0, 70, 2)
            box = [float(x), float(y), float(rng.uniform(8, 30)), float(rng.uniform(8, 30))]
            cat = int(rng.integers(1, 3))
            anns.append((len(anns) + 1, image, cat, box, {"iscrowd": int(rng.random() < 0.15)}))
            for _ in range(int(rng.integers(0, 3))):
                jitter = (np.asarray(box) + rng.normal(0, 3, 4) * [1, 1, 0.5, 0.5]).tolist()
                dets.append((image, int(rng.integers(1, 3)), jitter, float(rng.random())))
        dets.append((image, 1, [float(v) for v in rng.uniform(0, 60, 2)] + [15.0, 15.0], float(rng.random())))
    images = [(i, 100, 100) for i in range(1, 7)]
    coco_eval = evaluated(tmp_path, anns, dets, images)
    m = matches_from_cocoeval(coco_eval)
    thr = [0.3, 0.5]
    matrix, _ = analyse_errors(m, thr)
    crowd = {a[0] for a in anns if a[4]["iscrowd"]}
    for k in range(2):
        assert matrix[k].sum() == sum(1 for a in anns if a[2] == k + 1 and a[0] not in crowd)
        kept = (m.det_label == k) & (m.det_score >= thr[k]) & ~m.det_ignored
        assert matrix[:, k].sum() == kept.sum()
        assert matrix[k, k] == (kept & m.det_tp).sum()


def test_pr_curve_is_cocoevals_precision_array(tmp_path):
    anns = [(1, 1, 1, A, {}), (2, 1, 2, B, {}), (3, 2, 1, B, {}), (4, 2, 2, A, {})]
    dets = [
        (1, 1, A_NEAR, 0.9),
        (1, 2, B, 0.3),
        (1, 1, NOWHERE, 0.7),
        (2, 1, B, 0.6),
        (2, 1, A, 0.5),
        (2, 2, NOWHERE, 0.4),
    ]
    coco_eval = evaluated(tmp_path, anns, dets, images=((1, 100, 100), (2, 100, 100)))
    result = analyse(coco_eval)
    for k in range(2):
        np.testing.assert_array_equal(result.pr[0.5][:, k], coco_eval.eval["precision"][0, :, k, 0, -1])
        np.testing.assert_array_equal(result.pr[0.75][:, k], coco_eval.eval["precision"][5, :, k, 0, -1])
    assert result.metrics["bbox_mAP_50"] == pytest.approx(coco_eval.stats[1])


def brute_force_best_f1(coco_gt_eval, dets, tmp_path, anns, images):
    """For every distinct score t: rerun COCOeval on the detections with score >= t alone and
    count its true/false positives at IoU 0.5 from scratch -> (best F1, its highest t)."""
    best = (0.0, None)
    n_gt = sum(1 for a in anns if not a[4].get("iscrowd"))
    for t in sorted({d[3] for d in dets}, reverse=True):
        kept = [d for d in dets if d[3] >= t]
        with contextlib.redirect_stdout(io.StringIO()):
            e = evaluated(tmp_path / f"t{t}", anns, kept, images)
        tp = fp = 0
        for r in e.evalImgs:
            if r is None or r["aRng"] != e.params.areaRng[0]:
                continue
            matched, ignored = r["dtMatches"][0] > 0, r["dtIgnore"][0].astype(bool)
            tp += int((matched & ~ignored).sum())
            fp += int((~matched & ~ignored).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        rcl = tp / n_gt
        f1 = 2 * p * rcl / (p + rcl) if p + rcl else 0.0
        if f1 > best[0] + 1e-12:
            best = (f1, t)
    return best


def test_f1_optimal_threshold_equals_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    images = [(i, 100, 100) for i in (1, 2, 3)]
    anns, dets = [], []
    for image in (1, 2, 3):
        for _ in range(3):
            box = [float(v) for v in rng.uniform(0, 60, 2)] + [float(v) for v in rng.uniform(10, 35, 2)]
            anns.append((len(anns) + 1, image, int(rng.integers(1, 3)), box, {"iscrowd": int(rng.random() < 0.1)}))
            for _ in range(2):
                dets.append(
                    (
                        image,
                        anns[-1][2],
                        (np.asarray(box) + rng.normal(0, 4, 4)).tolist(),
                        round(float(rng.random()), 3),
                    )
                )
        dets.append((image, 2, [float(v) for v in rng.uniform(0, 60, 2)] + [20.0, 20.0], round(float(rng.random()), 3)))
    chosen = choose_thresholds(matches_from_cocoeval(evaluated(tmp_path, anns, dets, images)))
    f1, t = brute_force_best_f1(None, dets, tmp_path, anns, images)
    assert chosen["global"] == t and chosen["f1"] == pytest.approx(f1)
    for k, cat in enumerate((1, 2)):  # per class: the same search on that class's boxes alone
        sub_anns = [a for a in anns if a[2] == cat]
        sub_dets = [d for d in dets if d[1] == cat]
        f1_k, t_k = brute_force_best_f1(None, sub_dets, tmp_path / f"c{cat}", sub_anns, images)
        assert chosen["per_class"][k] == (t_k if t_k is not None else chosen["global"])
        assert chosen["per_class_f1"][k] == pytest.approx(f1_k)


def test_f1_on_a_grid_agrees_with_the_table():
    score = np.array([0.9, 0.8, 0.8, 0.5, 0.2])
    tp = np.array([True, False, True, True, False])
    table = f1_table(score, tp, np.zeros(5, bool), num_gt=4)
    assert table["threshold"].tolist() == [0.9, 0.8, 0.5, 0.2]  # tied scores are one threshold
    grid = np.array([0.95, 0.9, 0.85, 0.8, 0.6, 0.5, 0.3, 0.0])
    direct = []
    for t in grid:
        keep = score >= t
        n_tp, n_fp = int((tp & keep).sum()), int((~tp & keep).sum())
        p, r = (n_tp / (n_tp + n_fp) if keep.any() else 0.0), n_tp / 4
        direct.append(2 * p * r / (p + r) if p + r else 0.0)
    np.testing.assert_allclose(f1_at(table, grid), direct)
