"""Fine-tuning from a whole detector checkpoint: what is loaded, rebuilt and refused
(``checkpoints.finetune``), ``Trainer(init_weights=...)``, ``train.freeze`` and ``train --weights``."""

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from sparse_rcnn.checkpoints import (
    COCO_CLASS_NAMES,
    CheckpointError,
    convert_mmdet_state_dict,
    init_from_checkpoint,
    model_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from sparse_rcnn.config import ConfigError, config_from_dict
from sparse_rcnn.engine import Trainer
from sparse_rcnn.models import build_model
from tiny import tiny_config, tiny_model_config
from train_fixtures import LANDSCAPE, make_coco, run, subprocess_env, write_yaml

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from golden_weights import generate_state  # noqa: E402

COCO10 = list(COCO_CLASS_NAMES[:10])  # person, bicycle, car, ..., truck, boat, traffic light
FAST = {"train_scale": [128, 96], "batch_size": 2, "workers": 0}


def _noisy(state: dict, seed: int) -> dict:
    """Every floating tensor moved off any init value, so that 'equals the checkpoint' means loaded."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in state.items()}


def _plain(cfg) -> dict:
    return json.loads(json.dumps(cfg.to_dict()))  # tuples -> lists, for YAML


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """Our checkpoint of a tiny model (resnet18, 2 stages, 8 proposals) with COCO's first 10 classes."""
    cfg = tiny_config(num_classes=10)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_scale=(128, 96), batch_size=2, workers=0))
    model = build_model(cfg.model, COCO10)
    model.load_state_dict(_noisy(model.state_dict(), 1))
    path = tmp_path_factory.mktemp("ours") / "ours.pth"
    save_checkpoint(model_checkpoint(model, cfg), path)
    return path, cfg.model, model.state_dict()


@pytest.fixture(scope="module")
def golden_mmdet(tmp_path_factory):
    """The golden fixture's small model in MMDetection's own format and key names (6 stages, 16
    proposals), labelled with COCO's first 10 class names."""
    meta = json.loads((GOLDEN / "golden.json").read_text())
    state = _noisy({k: torch.from_numpy(v) for k, v in generate_state(meta["spec"], meta["seed"]).items()}, 2)
    path = tmp_path_factory.mktemp("golden") / "golden_mmdet.pth"
    torch.save({"meta": {"CLASSES": COCO10}, "state_dict": state}, path)
    model_cfg = config_from_dict({"model": {**meta["model_config"], "test_scale": [128, 96]}}).model
    return path, model_cfg, convert_mmdet_state_dict(state)


@pytest.fixture(params=["ours", "mmdet"])
def source(request):
    return request.getfixturevalue({"ours": "ours", "mmdet": "golden_mmdet"}[request.param])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four images whose categories are person, car, forklift (two COCO names and a new one)."""
    root = tmp_path_factory.mktemp("data")
    ann, images = make_coco(root, [LANDSCAPE] * 4, seed=3, boxes_per_image=2)
    coco = json.loads(ann.read_text())
    coco["categories"] = [{"id": i + 1, "name": n} for i, n in enumerate(["person", "car", "forklift"])]
    ann.write_text(json.dumps(coco))
    return ann, images


def _class_keys(state):
    return {k for k in state if ".cls_logits." in k}


def test_only_the_classifiers_depend_on_the_class_count():
    a, b = (build_model(tiny_model_config(num_classes=n)).state_dict() for n in (3, 5))
    assert a.keys() == b.keys()
    assert {k for k in a if a[k].shape != b[k].shape} == {
        f"stages.{i}.cls_logits.{p}" for i in range(2) for p in ("weight", "bias")
    }


def test_every_tensor_loads_and_matched_classes_keep_their_rows(source):
    path, model_cfg, ref = source
    cfg = dataclasses.replace(model_cfg, num_classes=3)
    new = ["Car", "forklift", "person"]
    torch.manual_seed(5)
    model = build_model(cfg, new)
    torch.manual_seed(5)
    fresh = build_model(cfg, new).state_dict()
    report = init_from_checkpoint(model, str(path))
    state = model.state_dict()
    cls_keys = _class_keys(state)
    assert len(cls_keys) == 2 * model_cfg.num_stages
    for key in state.keys() - cls_keys:
        assert torch.equal(state[key], ref[key]), key
    for key in cls_keys:
        assert torch.equal(state[key][0], ref[key][2]) and torch.equal(state[key][2], ref[key][0]), key  # car, person
        new_row = torch.zeros_like(fresh[key][1]) if key.endswith(".weight") else fresh[key][1]
        assert torch.equal(state[key][1], new_row) and not torch.equal(state[key][1], ref[key][1]), key  # forklift
    assert state["stages.0.cls_logits.bias"][1].item() == pytest.approx(-math.log(99))  # the focal prior
    assert report.mapping == ["Car <- car", "forklift: new", "person <- person"]
    assert (report.loaded, set(report.rebuilt), report.skipped) == (len(state) - len(cls_keys), cls_keys, ())
    assert report.record()["classes"] == report.mapping and any("forklift: new" in x for x in report.lines())


@pytest.mark.parametrize("proposals", [12, 5])
def test_other_proposal_counts_keep_the_first_pretrained_rows(ours, proposals):
    path, model_cfg, ref = ours
    cfg = dataclasses.replace(model_cfg, num_proposals=proposals)
    torch.manual_seed(0)
    model = build_model(cfg, COCO10)
    torch.manual_seed(0)
    fresh = build_model(cfg, COCO10).state_dict()
    report = init_from_checkpoint(model, path)
    keep = min(proposals, 8)
    for key in ("proposal_boxes.weight", "proposal_features.weight"):
        got = model.state_dict()[key]
        assert got.shape[0] == proposals and key in report.rebuilt
        assert torch.equal(got[:keep], ref[key][:keep]) and torch.equal(got[keep:], fresh[key][keep:])
    assert report.proposals == (8, proposals)


def test_class_map_aliases_and_its_errors(ours):
    path, model_cfg, ref = ours
    cfg = dataclasses.replace(model_cfg, num_classes=2)
    report = init_from_checkpoint(build_model(cfg, ["lorry", "Person"]), path, class_map={"Lorry": "TRUCK"})
    assert report.mapping == ["lorry <- truck", "Person <- person"]
    model = build_model(cfg, ["lorry", "Person"])
    init_from_checkpoint(model, path, class_map={"lorry": "truck"})
    assert torch.equal(model.stages[1].cls_logits.weight[0], ref["stages.1.cls_logits.weight"][COCO10.index("truck")])
    with pytest.raises(ConfigError, match=r"'lorrie' is not a class of the checkpoint"):
        init_from_checkpoint(model, path, class_map={"lorry": "lorrie"})
    with pytest.raises(ConfigError, match=r"'van' is not a class of the training data and 'vehicle' is not"):
        init_from_checkpoint(model, path, class_map={"van": "vehicle"})


def test_another_architecture_is_refused_naming_what_differs(ours, tmp_path):
    path, model_cfg, _ = ours
    with pytest.raises(
        CheckpointError, match=r"model\.backbone resnet18 \(model: resnet34\), model\.fpn_channels 32 \(model: 64\)"
    ):
        init_from_checkpoint(
            build_model(dataclasses.replace(model_cfg, backbone="resnet34", fpn_channels=64, num_heads=4)), path
        )
    with pytest.raises(CheckpointError, match=r"model\.num_heads 4 \(model: 2\)"):  # same tensors, other meaning
        init_from_checkpoint(build_model(dataclasses.replace(model_cfg, num_heads=2)), path)


def _golden_yaml(tmp_path, golden_mmdet, **train):
    _, model_cfg, _ = golden_mmdet
    raw = {
        "name": "golden",
        "model": dataclasses.asdict(model_cfg),
        "data": FAST,
        "train": {"lr": 1e-4, "warmup_iters": 1, "log_interval": 1, "eval_interval": 0, **train},
    }
    return write_yaml(tmp_path / "golden.yaml", json.loads(json.dumps(raw)))


def _records(out: Path, kind: str) -> list[dict]:
    return [r for line in (out / "log.jsonl").read_text().splitlines() if (r := json.loads(line))["type"] == kind]


def test_cli_fine_tunes_an_mmdet_checkpoint_onto_person_car_forklift(run_cli, golden_mmdet, data, tmp_path):
    ann, images = data
    out = tmp_path / "out"
    rc, errors = run_cli(
        [
            "train",
            "--config",
            str(_golden_yaml(tmp_path, golden_mmdet)),
            "--weights",
            str(golden_mmdet[0]),
            "--train-ann",
            str(ann),
            "--train-images",
            str(images),
            "--val-ann",
            str(ann),
            "--val-images",
            str(images),
            "--max-iters",
            "2",
            "--output-dir",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert (rc, errors) == (0, [])
    (init,) = _records(out, "init")
    assert init["classes"] == ["person <- person", "car <- car", "forklift: new"]
    first = _records(out, "val")[0]
    assert first["iter"] == 0 and {"bbox_AP_person", "bbox_AP_car", "bbox_AP_forklift"} <= first.keys()
    assert [r["iter"] for r in _records(out, "train")] == [1, 2]
    assert read_checkpoint(out / "model_final.pth")["class_names"] == ["person", "car", "forklift"]


def test_weights_with_resume_resumes_and_without_config_takes_the_checkpoints(run_cli, ours, data, tmp_path, caplog):
    ann, images = data
    out = tmp_path / "out"
    argv = [
        "train",
        "--weights",
        str(ours[0]),
        "--train-ann",
        str(ann),
        "--train-images",
        str(images),
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--set",
        "train.warmup_iters=1",
        "--set",
        "train.checkpoint_interval=1",
        "--set",
        "train.log_interval=1",
    ]
    assert run_cli([*argv, "--max-iters", "2"]) == (0, [])
    ckpt = read_checkpoint(out / "checkpoints" / "iter_0000002.pth")
    assert config_from_dict(ckpt["config"]).model == dataclasses.replace(ours[1], num_classes=3)  # the checkpoint's
    assert run_cli([*argv, "--max-iters", "3", "--resume"]) == (0, [])
    assert "resume wins" in caplog.text and "resumed from" in caplog.text
    assert len(_records(out, "init")) == 1 and [r["iter"] for r in _records(out, "train")] == [1, 2, 3]
    # in Python: resuming loads the run's own checkpoint, not the initial weights
    trainer = Trainer(
        config_from_dict(ckpt["config"]), output_dir=out, resume=True, init_weights=ours[0], progress=False
    )
    assert trainer.init_report is None
    assert torch.equal(
        trainer.model.stages[0].ffn[0].weight,
        read_checkpoint(out / "checkpoints" / "iter_0000003.pth")["model"]["stages.0.ffn.0.weight"],
    )


@pytest.mark.parametrize(
    "freeze, frozen, moving",
    [
        ("backbone", ("backbone.body.",), ("backbone.fpn.", "stages.")),
        ("backbone+fpn", ("backbone.body.", "backbone.fpn."), ("stages.", "proposal_")),
    ],
)
def test_freeze_keeps_the_frozen_parts_and_trains_the_rest(ours, data, tmp_path, freeze, frozen, moving):
    path, model_cfg, ref = ours
    ann, images = data
    raw = _plain(tiny_config())
    raw["model"].update(frozen_stages=0, norm="bn")  # BatchNorm statistics would move if not frozen
    raw["data"].update(FAST, train_ann=str(ann), train_images=str(images))
    raw["train"].update(max_iters=3, lr=1e-3, warmup_iters=1, freeze=freeze)
    trainer = Trainer(config_from_dict(raw), output_dir=tmp_path / "out", init_weights=path, progress=False)
    trainer.fit()
    state = trainer.model.state_dict()
    for key in state.keys() - _class_keys(state):
        if key.startswith(frozen):
            assert torch.equal(state[key], ref[key]), key
        elif key.startswith(moving) and state[key].is_floating_point():
            assert not torch.equal(state[key], ref[key]), key


@pytest.mark.slow
def test_torchrun_two_processes_fine_tune_with_a_frozen_backbone(ours, data, tmp_path):
    ann, images = data
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sparse_rcnn.cli",
        "train",
        "--weights",
        str(ours[0]),
        "--train-ann",
        str(ann),
        "--train-images",
        str(images),
        "--val-ann",
        str(ann),
        "--val-images",
        str(images),
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--max-iters",
        "2",
        "--batch-size",
        "1",
        "--set",
        "train.freeze=backbone",
        "--set",
        "train.warmup_iters=1",
    ]
    proc = run(cmd, subprocess_env(OMP_NUM_THREADS="1"), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "over 2 process(es)" in proc.stderr and proc.stderr.count("car <- car") == 1  # rank 0 reports
    (init,) = _records(out, "init")
    assert init["classes"] == ["person <- person", "car <- car", "forklift: new"]
    assert _records(out, "val")[0]["iter"] == 0
    state, ref = read_checkpoint(out / "model_final.pth")["model"], ours[2]
    assert all(torch.equal(v, ref[k]) for k, v in state.items() if k.startswith("backbone.body."))
    assert not torch.equal(state["stages.0.ffn.0.weight"], ref["stages.0.ffn.0.weight"])


@pytest.mark.parametrize(
    "case, extra, message",
    [
        (
            "unknown zoo name",
            ["--weights", "sparse_rcnn_r50_fpn_1x_cocoo"],
            "did you mean 'sparse_rcnn_r50_fpn_1x_coco'",
        ),
        ("not a detector", ["--weights", "{resnet}"], "bare state_dict"),
        ("other detector", ["--weights", "{retina}"], "not a Sparse R-CNN checkpoint"),
        ("other depth", ["--weights", "{r34}", "--config", "{yaml}"], "model.backbone resnet34 (model: resnet18)"),
        (
            "class map",
            ["--weights", "{ours}", "--set", 'train.class_map={"truck": "car"}'],
            "--set train.class_map maps 'truck' -> 'car', but 'truck' is not a class of the training data",
        ),
        ("class map file", ["--weights", "{ours}", "--set", "train.class_map={missing}"], "cannot read"),
        ("mmdet without config", ["--weights", "{mmdet}"], "pass a --config that describes it"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    run_cli, ours, golden_mmdet, data, tmp_path, case, extra, message
):
    from torchvision.models import resnet18

    from tiny import save_tiny_checkpoint

    files = {
        "ours": ours[0],
        "mmdet": golden_mmdet[0],
        "missing": tmp_path / "missing.json",
        "r34": save_tiny_checkpoint(tmp_path / "r34.pth", COCO10, backbone="resnet34"),
        "yaml": write_yaml(tmp_path / "tiny.yaml", _plain(tiny_config())),
    }
    torch.save(resnet18().state_dict(), files.setdefault("resnet", tmp_path / "resnet18.pth"))
    torch.save(
        {"meta": {}, "state_dict": {"bbox_head.retina_cls.weight": torch.zeros(1)}},
        files.setdefault("retina", tmp_path / "r.pth"),
    )
    ann, images = data
    out = tmp_path / "out"
    for name, value in files.items():
        extra = [x.replace("{" + name + "}", str(value)) for x in extra]
    rc, errors = run_cli(
        [
            "train",
            *extra,
            "--train-ann",
            str(ann),
            "--train-images",
            str(images),
            "--output-dir",
            str(out),
            "--max-iters",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors
    assert not out.exists()
