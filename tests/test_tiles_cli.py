"""``predict --tile`` / ``--tta``: the same records as without, with the wrapped model's detections."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn import cli
from sparse_rcnn.inference import TiledDetector, TTADetector
from sparse_rcnn.models import load_model
from tiny import save_tiny_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiles_cli")
    torch.manual_seed(0)
    save_tiny_checkpoint(root / "tiny.pth", ["a", "b", "c"])
    image = root / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (130, 210, 3), dtype=np.uint8)).save(image)
    return root, image


def _predict(root, image, *args):
    out = root / "out.json"
    status = cli.main(["predict", str(image), "--weights", str(root / "tiny.pth"), "--output", str(out), *args])
    return status, json.loads(out.read_text())


@pytest.mark.parametrize(
    "args, wrap",
    [
        (
            ["--tile", "100x90", "--max-detections", "20"],
            lambda m: TiledDetector(m, (100, 90), max_detections=20, batch_size=1),
        ),
        (
            ["--tta", "--tta-scales", "0.9,1.1", "--merge", "wbf"],
            lambda m: TTADetector(m, scales=(0.9, 1.1), merge="wbf", batch_size=1),
        ),
    ],
)
def test_records_are_the_wrapped_model_s(setup, args, wrap):
    root, image = setup
    status, plain = _predict(root, image)
    assert status == 0
    status, got = _predict(root, image, *args)
    assert status == 0 and len(got) == 1 and got[0].keys() == plain[0].keys()
    assert (got[0]["width"], got[0]["height"]) == (210, 130)
    wrapper = wrap(load_model(weights=str(root / "tiny.pth")))
    arr = torch.from_numpy(np.array(Image.open(image))).permute(2, 0, 1).contiguous()
    with torch.no_grad():
        det = wrapper.detect_resized([arr], [(1.0, 1.0)])[0]
    assert [d["label"] for d in got[0]["detections"]] == det["labels"].tolist()
    np.testing.assert_allclose([d["box"] for d in got[0]["detections"]], det["boxes"].numpy(), rtol=0, atol=1e-4)


def test_view_options_need_tile_or_tta(setup, caplog):
    root, image = setup
    assert cli.main(["predict", str(image), "--weights", str(root / "tiny.pth"), "--max-detections", "5"]) != 0
    assert "--tile or --tta" in caplog.text
