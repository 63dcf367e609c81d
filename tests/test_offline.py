"""Downloads all go through checkpoints.download: keyed by URL, one line offline (no real network:
a localhost server, or a port nobody listens on)."""

import hashlib
import socket
from types import SimpleNamespace

import pytest
import torch
from torchvision.models import resnet

import sparse_rcnn.models.backbone as backbone
from sparse_rcnn.checkpoints import CheckpointError, download
from sparse_rcnn.checkpoints.download import cache_path
from sparse_rcnn.models import build_model
from tiny import tiny_model_config
from train_fixtures import make_coco, tiny_config_dict, write_yaml


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def _serve_resnet18(root):
    """A torchvision ResNet-18 state dict under a torchvision-style hashed name -> (file, weights)."""
    state = resnet.resnet18().state_dict()
    blob = root / "blob.pth"
    torch.save(state, blob)
    name = f"resnet18-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"
    blob.rename(root / name)
    return root / name, state


def _point_resnet18_at(monkeypatch, url):
    monkeypatch.setitem(backbone.RESNET_WEIGHTS, "resnet18", SimpleNamespace(url=url))


def test_download_cache_is_keyed_by_url(http_dir, tmp_path):
    root, base = http_dir
    for sub, content in (("a", b"first model"), ("b", b"second model")):
        (root / sub).mkdir()
        (root / sub / "model_final.pth").write_bytes(content)
    cache = tmp_path / "cache"
    a = download(f"{base}/a/model_final.pth", cache_dir=cache, progress=False)
    b = download(f"{base}/b/model_final.pth", cache_dir=cache, progress=False)
    assert a != b and a.read_bytes() == b"first model" and b.read_bytes() == b"second model"
    # a name carrying its sha256 prefix keeps it (torch hub's layout, shared with torchvision)
    assert cache_path("https://h/x/resnet50-0676ba61.pth", cache).name == "resnet50-0676ba61.pth"


def test_backbone_weights_come_through_our_download(http_dir, hub, monkeypatch):
    root, base = http_dir
    file, state = _serve_resnet18(root)
    _point_resnet18_at(monkeypatch, f"{base}/{file.name}")
    model = build_model(tiny_model_config(pretrained_backbone=True))
    assert torch.equal(model.backbone.body.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.backbone.body.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert (hub / file.name).is_file()  # where torchvision itself would have kept it


def test_backbone_weights_from_a_local_file(tmp_path, closed_port, hub, monkeypatch):
    file, state = _serve_resnet18(tmp_path)
    _point_resnet18_at(monkeypatch, f"http://127.0.0.1:{closed_port}/{file.name}")  # never reached
    model = build_model(tiny_model_config(pretrained_backbone=True, backbone_weights=str(file)))
    assert torch.equal(model.backbone.body.conv1.weight, state["conv1.weight"])
    wrong = tmp_path / "resnet18-00000000.pth"  # its name promises another hash
    wrong.write_bytes(file.read_bytes())
    with pytest.raises(CheckpointError, match="sha256 does not start with 00000000"):
        build_model(tiny_model_config(pretrained_backbone=True, backbone_weights=str(wrong)))
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": SimpleNamespace()}, evil)
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        build_model(tiny_model_config(pretrained_backbone=True, backbone_weights=str(evil)))


def test_training_offline_is_one_line_and_writes_nothing(run_cli, tmp_path, closed_port, hub, monkeypatch):
    url = f"http://127.0.0.1:{closed_port}/resnet18-f37072fd.pth"
    _point_resnet18_at(monkeypatch, url)
    ann, images = make_coco(tmp_path, [(90, 120)] * 2)
    raw = tiny_config_dict()
    raw["model"]["pretrained_backbone"] = True
    cfg = write_yaml(tmp_path / "tiny.yaml", raw)
    out = tmp_path / "run"
    rc, errors = run_cli(
        [
            "train",
            "--config",
            str(cfg),
            "--train-ann",
            str(ann),
            "--train-images",
            str(images),
            "--output-dir",
            str(out),
        ]
    )
    assert rc == 2 and len(errors) == 1
    message = errors[0]
    for part in (
        "resnet18-f37072fd.pth",
        url,
        str(hub / "resnet18-f37072fd.pth"),
        "--set model.backbone_weights=PATH",
        "--weights",
        "--set model.pretrained_backbone=false",
    ):
        assert part in message, (part, message)
    assert not out.exists()
    assert not any(hub.glob("*")) if hub.exists() else True  # nothing half-downloaded left in the cache
