"""Trainer pieces: MMDetection's lr schedule, the optimiser, the batch sampler, a whole small run, parity."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from sparse_rcnn import cli
from sparse_rcnn.checkpoints import read_checkpoint
from sparse_rcnn.config import config_from_dict
from sparse_rcnn.data.sampler import GroupedBatchSampler
from sparse_rcnn.engine import Trainer, build_optimizer, lr_factor
from sparse_rcnn.models import build_model, load_model
from tiny import tiny_model_config
from train_fixtures import LANDSCAPE, PORTRAIT, make_coco, tiny_config_dict, write_yaml

ROOT = Path(__file__).resolve().parents[1]

# Recorded with mmengine 0.10.7 (the oracle venv) by tools/record_mmengine_lr.py: LinearLR(start_factor=0.001,
# by_epoch=False, begin=0, end=500) + MultiStepLR(by_epoch=True, milestones=[8, 11], gamma=0.1) on
# AdamW(lr=2.5e-5), stepped as mmengine's ParamSchedulerHook does. {iteration: (epoch, lr)}.
MMENGINE_LR = {
    100: {
        0: (0, 2.5000000000000002e-08),
        1: (0, 7.505010020040081e-08),
        250: (2, 1.253752505010022e-05),
        499: (4, 2.500000000000008e-05),
        500: (5, 2.500000000000008e-05),
        501: (5, 2.500000000000008e-05),
        799: (7, 2.500000000000008e-05),
        800: (8, 2.5000000000000083e-06),
        1099: (10, 2.5000000000000083e-06),
        1100: (11, 2.5000000000000084e-07),
        1199: (11, 2.5000000000000084e-07),
    },
    # 40 iterations per epoch: the epoch-8 step (iteration 320) falls inside the warm-up
    40: {
        0: (0, 2.5000000000000002e-08),
        1: (0, 7.505010020040081e-08),
        250: (6, 1.253752505010022e-05),
        319: (7, 1.5990981963927883e-05),
        320: (8, 1.6041032064128284e-06),
        321: (8, 1.6091082164328685e-06),
        439: (10, 2.1996993987975993e-06),
        440: (11, 2.2047044088176394e-07),
        479: (11, 2.399899799599203e-07),
    },
}


@pytest.mark.parametrize("iters_per_epoch", sorted(MMENGINE_LR))
def test_lr_schedule_matches_mmengine(iters_per_epoch):
    for it, (epoch, ref) in MMENGINE_LR[iters_per_epoch].items():
        assert it // iters_per_epoch == epoch
        ours = 2.5e-5 * lr_factor(it, epoch, warmup_iters=500, warmup_factor=0.001, steps=(8, 11), gamma=0.1)
        assert ours == pytest.approx(ref, rel=1e-12), f"iteration {it}"


def test_optimizer_is_adamw_with_decay_on_every_trainable_parameter():
    model = build_model(tiny_model_config())
    opt = build_optimizer(model, lr=2.5e-5, weight_decay=1e-4)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["lr"] == 2.5e-5 and group["weight_decay"] == 1e-4
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert [id(p) for p in group["params"]] == [id(p) for p in trainable]
    assert len(trainable) < len(list(model.parameters()))  # the frozen stem and layer1 are left out


def test_sampler_groups_by_orientation_is_deterministic_resumable_and_sharded():
    ratios = [1.5, 0.7, 1.2, 1.0, 0.5, 2.0, 0.8, 1.4, 1.1, 0.6, 1.3]
    single = GroupedBatchSampler(ratios, 2, seed=3)
    single.set_epoch(4)
    batches = list(single)
    assert len(batches) == len(single) == 6
    single.set_epoch(4)
    assert list(single) == batches
    single.set_epoch(5)
    assert list(single) != batches
    assert sorted(set(i for b in batches for i in b)) == list(range(len(ratios)))  # every image, each epoch
    mixed = 0
    for b in batches:
        mixed += len({ratios[i] >= 1 for i in b}) > 1
    assert mixed <= 1  # only the leftovers may mix orientations
    single.set_epoch(4, start=4)
    assert list(single) == batches[4:]
    # 2 ranks x batch 1 see exactly the global batches of 1 rank x batch 2
    ranks = [GroupedBatchSampler(ratios, 1, seed=3, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(4)
    assert [a + b for a, b in zip(*map(list, ranks))] == batches
    with pytest.raises(ValueError, match="outside"):
        single.set_epoch(0, start=7)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    train = make_coco(root, [LANDSCAPE] * 4, seed=5, boxes_per_image=2)  # same size: batching pads nothing
    val = make_coco(root, [LANDSCAPE, PORTRAIT], seed=6, name="val")
    return train, val


def test_cli_train_writes_logs_checkpoints_curves_and_metrics(small_data, tmp_path, caplog):
    (ann, images), (val_ann, val_images) = small_data
    raw = tiny_config_dict(epochs=1, checkpoint_interval=1, keep_checkpoints=1)
    raw["model"]["num_classes"] = 5  # the data has 3 categories: the trainer follows the data
    cfg_yaml = write_yaml(tmp_path / "cfg.yaml", raw)
    out = tmp_path / "out"
    argv = [
        "train",
        "--config",
        str(cfg_yaml),
        "--train-ann",
        str(ann),
        "--train-images",
        str(images),
        "--val-ann",
        str(val_ann),
        "--val-images",
        str(val_images),
        "--output-dir",
        str(out),
    ]
    caplog.set_level("INFO", logger="sparse_rcnn")
    assert cli.main(argv) == 0
    assert "num_classes 5 -> 3" in caplog.text
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert [r["iter"] for r in train] == [1, 2]
    for key in ("epoch", "loss", "loss_cls", "loss_bbox", "loss_iou", "lr", "time", "data_time", "memory_mb"):
        assert math.isfinite(train[-1][key]), key
    assert train[0]["loss"] == pytest.approx(
        train[0]["loss_cls"] + train[0]["loss_bbox"] + train[0]["loss_iou"], rel=1e-5
    )
    assert train[0]["lr"] == pytest.approx(1e-4 * 0.001)  # first warm-up value
    val = [r for r in records if r["type"] == "val"]
    assert len(val) == 1 and 0.0 <= val[0]["bbox_mAP"] <= 1.0 and val[0]["iter"] == 2
    assert json.loads((out / "metrics.json").read_text())["bbox_mAP"] == val[0]["bbox_mAP"]
    assert (out / "curves.png").stat().st_size > 0
    assert [p.name for p in (out / "checkpoints").glob("iter_*.pth")] == ["iter_0000002.pth"]  # keep_checkpoints=1
    ckpt = read_checkpoint(out / "checkpoints" / "iter_0000002.pth")
    assert ckpt["config"]["model"]["num_classes"] == 3 and ckpt["config"]["data"]["train_ann"] == str(ann)
    assert {"optimizer", "scaler", "rng", "epoch", "iter", "iter_in_epoch"} <= set(ckpt)
    model = load_model(weights=str(out / "model_final.pth"))
    assert model.class_names == ["class0", "class1", "class2"]
    # the same output folder again without --resume is refused with one line
    caplog.clear()
    assert cli.main(argv) == 2
    assert "already holds checkpoints; continue that run with --resume" in caplog.text


def test_accumulating_two_batches_of_one_equals_one_batch_of_two(small_data, tmp_path):
    """Every image has 2 boxes, so the per-batch loss normalisers agree and the two are the same step.

    Compared on the step's gradient (left in ``.grad`` after the last step), not on the weights:
    Adam divides by sqrt(v), so a parameter whose gradient is mere rounding noise moves by a full
    lr either way, and weights after Adam differ by up to ~lr (1.01e-5 seen with lr 2.5e-5).
    """
    (ann, images), _ = small_data

    def run(batch_size, accumulate, out):
        raw = tiny_config_dict(max_iters=1, warmup_iters=1, lr=2.5e-5, accumulate=accumulate, checkpoint_interval=0)
        raw["data"].update(train_ann=str(ann), train_images=str(images), batch_size=batch_size)
        trainer = Trainer(config_from_dict(raw), output_dir=tmp_path / out, progress=False)
        trainer.fit()
        return trainer

    a, b = run(2, 1, "batch2"), run(1, 2, "accumulate2")
    assert b.iters_per_epoch == a.iters_per_epoch == 2
    grads_a = {n: p.grad for n, p in a.model.named_parameters() if p.grad is not None}
    grads_b = {n: p.grad for n, p in b.model.named_parameters() if p.grad is not None}
    assert grads_a.keys() == grads_b.keys() and grads_a
    scale = max(g.abs().max().item() for g in grads_a.values())
    assert max((grads_a[n] - grads_b[n]).abs().max().item() for n in grads_a) <= 1e-4 * scale


def test_bf16_autocast_trains(small_data, tmp_path):
    (ann, images), _ = small_data
    raw = tiny_config_dict(max_iters=1, amp="bf16", checkpoint_interval=0)
    raw["data"].update(train_ann=str(ann), train_images=str(images))
    trainer = Trainer(config_from_dict(raw), output_dir=tmp_path, progress=False)
    trainer.fit()
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert math.isfinite(record["loss"]) and trainer.skipped_steps == 0


def _parity_tool():
    spec = importlib.util.spec_from_file_location("check_train_parity", ROOT / "tools" / "check_train_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (_parity_tool().ORACLE_DIR / "ref" / "sparse_rcnn_r50_fpn_1x_coco" / "train_losses.json").exists(),
    reason="MMDetection oracle outputs not generated (dev-only check; see shared/mmdet-reference)",
)
@pytest.mark.slow
def test_training_losses_and_gradients_match_mmdetection_through_the_data_pipeline():
    out = _parity_tool().check()
    worst_loss = max(r for *_, r in out["losses"].values())
    worst_grad = max(r for *_, r in out["grads"].values())
    assert len(out["losses"]) == 18 and worst_loss <= 1e-4, out["losses"]
    assert worst_grad <= 1e-3, out["grads"]
    assert out["num_params_with_grad"][0] == out["num_params_with_grad"][1]
