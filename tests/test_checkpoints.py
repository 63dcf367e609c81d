import argparse
import dataclasses
import hashlib
import json
import os
import re
import socket
from pathlib import Path

import pytest
import torch
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.checkpoints import CheckpointError, download, model_checkpoint, read_checkpoint, save_checkpoint
from sparse_rcnn.models import build_model, load_model
from test_images import scene
from tiny import tiny_config

# Our name -> MMDetection's, for building MMDetection-format files in tests.
_OURS_TO_MMDET = [
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.0\.", r"neck.lateral_convs.\1.conv."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.0\.", r"neck.fpn_convs.\1.conv."),
    (r"^proposal_boxes\.", "rpn_head.init_proposal_bboxes."),
    (r"^proposal_features\.", "rpn_head.init_proposal_features."),
    (r"^stages\.(\d+)\.self_attn\.", r"roi_head.bbox_head.\1.attention.attn."),
    (r"^stages\.(\d+)\.attn_norm\.", r"roi_head.bbox_head.\1.attention_norm."),
    (r"^stages\.(\d+)\.dynamic_conv\.", r"roi_head.bbox_head.\1.instance_interactive_conv."),
    (r"^stages\.(\d+)\.dynamic_norm\.", r"roi_head.bbox_head.\1.instance_interactive_conv_norm."),
    (r"^stages\.(\d+)\.ffn\.0\.", r"roi_head.bbox_head.\1.ffn.layers.0.0."),
    (r"^stages\.(\d+)\.ffn\.2\.", r"roi_head.bbox_head.\1.ffn.layers.1."),
    (r"^stages\.(\d+)\.ffn_norm\.", r"roi_head.bbox_head.\1.ffn_norm."),
    (r"^stages\.(\d+)\.cls_tower\.", r"roi_head.bbox_head.\1.cls_fcs."),
    (r"^stages\.(\d+)\.box_tower\.", r"roi_head.bbox_head.\1.reg_fcs."),
    (r"^stages\.(\d+)\.cls_logits\.", r"roi_head.bbox_head.\1.fc_cls."),
    (r"^stages\.(\d+)\.box_deltas\.", r"roi_head.bbox_head.\1.fc_reg."),
]


def to_mmdet(state):
    out = {}
    for k, v in state.items():
        for pat, rep in _OURS_TO_MMDET:
            new, n = re.subn(pat, rep, k)
            if n:
                out[new] = v
                break
        else:
            raise AssertionError(k)
    return out


@pytest.fixture
def tiny():
    cfg = tiny_config()
    model = build_model(cfg.model, ["cat", "dog", "bird"]).eval()
    return cfg, model


def _outputs(model):
    img = torch.randint(0, 256, (3, 64, 80), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        return model([img])[0]


def test_round_trip_keeps_config_classes_and_outputs(tiny, tmp_path):
    cfg, model = tiny
    path = tmp_path / "m.pth"
    save_checkpoint(model_checkpoint(model, cfg), path)
    loaded = load_model(weights=str(path))
    assert loaded.config.model == dataclasses.replace(cfg.model, pretrained_backbone=False)
    assert loaded.class_names == ["cat", "dog", "bird"]
    a, b = _outputs(model), _outputs(loaded)
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize(
    "meta", [{"CLASSES": ("cat", "dog", "bird")}, {"dataset_meta": {"classes": ["cat", "dog", "bird"]}}]
)
def test_mmdet_v2_and_v3_checkpoints_load_strictly(tiny, tmp_path, meta, monkeypatch):
    cfg, model = tiny
    path = tmp_path / "mmdet.pth"
    torch.save({"meta": meta, "state_dict": to_mmdet(model.state_dict())}, path)
    import sparse_rcnn.models.build as ck

    monkeypatch.setattr(ck, "load_config", lambda name: cfg)
    loaded = load_model("tiny", str(path))
    assert loaded.class_names == ["cat", "dog", "bird"]
    assert torch.equal(_outputs(model)["scores"], _outputs(loaded)["scores"])


def test_converter_errors_list_keys(tiny, tmp_path, monkeypatch):
    cfg, model = tiny
    import sparse_rcnn.models.build as ck

    monkeypatch.setattr(ck, "load_config", lambda name: cfg)
    state = to_mmdet(model.state_dict())
    extra = dict(state, **{"roi_head.mask_head.conv.weight": torch.zeros(1)})
    torch.save({"meta": {}, "state_dict": extra}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"no counterpart.*mask_head"):
        load_model("tiny", str(tmp_path / "extra.pth"))
    missing = {k: v for k, v in state.items() if "fc_reg" not in k}
    torch.save({"meta": {}, "state_dict": missing}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing \(4\): stages\.0\.box_deltas\.weight"):
        load_model("tiny", str(tmp_path / "missing.pth"))
    wrong = dict(
        state,
        **{
            "rpn_head.init_proposal_bboxes.weight": torch.zeros(5, 4),
            "rpn_head.init_proposal_features.weight": torch.zeros(5, 32),
        },
    )
    torch.save({"meta": {}, "state_dict": wrong}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"differs in num_proposals"):
        load_model("tiny", str(tmp_path / "wrong.pth"))


def test_unreadable_and_foreign_files(tmp_path):
    (tmp_path / "trunc.pth").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(tmp_path / "trunc.pth")
    torch.save({"foo": 1}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not a Sparse R-CNN checkpoint"):
        read_checkpoint(tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")


def test_convert_command(tiny, tmp_path, monkeypatch):
    cfg, model = tiny
    import sparse_rcnn.models.build as ck

    monkeypatch.setattr(ck, "load_config", lambda name: cfg)
    torch.save(
        {"meta": {"CLASSES": ["cat", "dog", "bird"]}, "state_dict": to_mmdet(model.state_dict())}, tmp_path / "a.pth"
    )
    assert cli.main(["convert", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--model", "tiny"]) == 0
    ours = read_checkpoint(tmp_path / "b.pth")
    assert ours["format"] == "sparse-rcnn" and ours["config"]["model"]["num_proposals"] == 8
    assert torch.equal(_outputs(load_model(weights=str(tmp_path / "b.pth")))["scores"], _outputs(model)["scores"])


def test_download_checks_hash_and_caches(tiny, tmp_path, http_dir, monkeypatch):
    cfg, model = tiny
    root, base = http_dir
    blob = tmp_path / "blob.pth"
    save_checkpoint(model_checkpoint(model, cfg), blob)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()[:8]
    good = root / f"tiny_20201222-{digest}.pth"
    good.write_bytes(blob.read_bytes())
    cache = tmp_path / "cache"
    path = download(f"{base}/{good.name}", cache_dir=cache, progress=False)
    assert path.read_bytes() == blob.read_bytes()
    good.unlink()  # second call is served from the cache
    assert download(f"{base}/{good.name}", cache_dir=cache, progress=False) == path
    # the model loads straight from the URL (through the default hub cache, redirected here)
    (root / good.name).write_bytes(blob.read_bytes())
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    assert load_model(weights=f"{base}/{good.name}").class_names == ["cat", "dog", "bird"]


def test_download_hash_mismatch_and_unreachable(tmp_path, http_dir):
    root, base = http_dir
    (root / "model_2020-deadbeef.pth").write_bytes(b"not the right bytes")
    with pytest.raises(CheckpointError, match="corrupt.*deadbeef"):
        download(f"{base}/model_2020-deadbeef.pth", cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "model_2020-deadbeef.pth").exists()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CheckpointError, match="cannot download"):
        download(f"http://127.0.0.1:{port}/x-12345678.pth", cache_dir=tmp_path / "c", progress=False)


@pytest.fixture
def image(tmp_path) -> str:
    Image.fromarray(scene()).save(tmp_path / "img.png")
    return str(tmp_path / "img.png")


def fake_mmdet_state(depth_blocks: int, proposals: int, classes: int = 80, stages: int = 6) -> dict:
    """The keys (with tiny tensors) by which an MMDetection checkpoint's architecture is read."""
    state = {f"backbone.layer3.{i}.conv1.weight": torch.zeros(1) for i in range(depth_blocks)}
    state["rpn_head.init_proposal_bboxes.weight"] = torch.zeros(proposals, 4)
    state.update({f"roi_head.bbox_head.{k}.fc_cls.weight": torch.zeros(classes, 1) for k in range(stages)})
    return state


def test_checkpoint_errors(tmp_path, tiny_weights, image, run_cli):
    good = Path(tiny_weights).read_bytes()
    (tmp_path / "truncated.pth").write_bytes(good[: len(good) // 2])
    torch.save({"foo": 1}, tmp_path / "foreign.pth")
    torch.save(
        {"state_dict": {"backbone.conv1.weight": torch.zeros(1), "rpn_head.rpn_conv.weight": torch.zeros(1)}},
        tmp_path / "faster_rcnn.pth",
    )
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    ckpt = torch.load(tiny_weights, weights_only=True)
    ckpt["config"]["model"]["anchor_free_magic"] = 1  # a checkpoint from a future version
    save_checkpoint(ckpt, tmp_path / "future.pth")
    torch.save(fake_mmdet_state(6, 100), tmp_path / "no_state_dict_key.pth")
    torch.save({"meta": {}, "state_dict": fake_mmdet_state(6, 100)}, tmp_path / "r50_100.pth")
    cases = {
        "truncated.pth": "unreadable, truncated or not a PyTorch file",
        "text.pth": "unreadable, truncated or not a PyTorch file",
        "foreign.pth": "not a Sparse R-CNN checkpoint (no 'state_dict' or sparse-rcnn 'model' entry; it holds: foo)",
        "faster_rcnn.pth": "not a Sparse R-CNN checkpoint: its state_dict has no rpn_head.init_proposal_bboxes",
        "pickled.pth": "holds pickled Python objects (argparse.Namespace)",
        "future.pth": "config this version cannot use: unknown config key 'model.anchor_free_magic'",
        "no_state_dict_key.pth": "a bare state_dict without its config",
        "missing.pth": "not found",
        "": "is a directory",
    }
    for name, message in cases.items():
        rc, errors = run_cli(["predict", image, "--weights", str(tmp_path / name)])
        assert rc == 2 and len(errors) == 1 and message in errors[0], (name, errors)
    # an MMDetection R-50 / 100-proposal checkpoint named as another zoo model: the differences are named
    for name, diff in [
        ("sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco", "backbone"),
        ("sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco", "num_proposals"),
    ]:
        rc, errors = run_cli(["predict", image, "--model", name, "--weights", str(tmp_path / "r50_100.pth")])
        assert rc == 2 and f"does not fit {name!r}: it differs in {diff}" in errors[0], errors


def test_weights_for_another_architecture_list_mismatched_keys(tmp_path, tiny_weights, image, run_cli):
    ckpt = torch.load(tiny_weights, weights_only=True)
    ckpt["config"]["model"]["num_proposals"] = 16  # state has 8
    save_checkpoint(ckpt, tmp_path / "proposals.pth")
    rc, errors = run_cli(["predict", image, "--weights", str(tmp_path / "proposals.pth")])
    assert rc == 2 and "does not fit this model architecture" in errors[0]
    assert "proposal_boxes.weight (8, 4) vs (16, 4)" in errors[0]
    # a resnet18 state loaded as resnet34 (MMDetection format + a YAML config): missing keys listed
    torch.save({"meta": {}, "state_dict": to_mmdet(ckpt["model"])}, tmp_path / "mmdet_r18.pth")
    cfg = tiny_config(test_scale=(64, 48))
    (tmp_path / "r34.yaml").write_text(json.dumps({"model": {**cfg.to_dict()["model"], "backbone": "resnet34"}}))
    rc, errors = run_cli(
        ["predict", image, "--model", str(tmp_path / "r34.yaml"), "--weights", str(tmp_path / "mmdet_r18.pth")]
    )
    assert rc == 2 and "missing (" in errors[0] and "backbone.body.layer1.2.conv1.weight" in errors[0], errors


def test_unknown_config_name_suggests_the_closest(image, run_cli):
    rc, errors = run_cli(["predict", image, "--model", "sparse_rcnn_r50_fpn_1x_cocoo"])
    assert rc == 2 and "did you mean 'sparse_rcnn_r50_fpn_1x_coco'" in errors[0]
    rc, errors = run_cli(["predict", image, "--model", "yolo"])
    assert rc == 2 and "unknown config 'yolo'" in errors[0]


class _CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_blocked_pickle_names_the_refused_global(tmp_path):
    torch.save({"model": _CallsSystem()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"pickled Python objects \((posix|nt)\.system\)"):
        read_checkpoint(tmp_path / "evil.pth")
