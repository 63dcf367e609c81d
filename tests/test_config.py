import pytest

from sparse_rcnn.config import ConfigError, load_config, named_configs

ZOO_NAMES = [
    "sparse_rcnn_r50_fpn_1x_coco",
    "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco",
    "sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco",
    "sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco",
    "sparse_rcnn_r101_fpn_300_proposals_crop_mstrain_480-800_3x_coco",
]


def test_zoo_configs_exist_and_differ_as_published():
    assert set(ZOO_NAMES) <= set(named_configs())
    c = {n: load_config(n) for n in ZOO_NAMES}
    assert c[ZOO_NAMES[0]].model.backbone == "resnet50" and c[ZOO_NAMES[0]].model.num_proposals == 100
    assert c[ZOO_NAMES[0]].train.lr_steps == (8, 11) and c[ZOO_NAMES[0]].data.pipeline == "1x"
    assert c[ZOO_NAMES[1]].data.pipeline == "multiscale" and c[ZOO_NAMES[1]].train.epochs == 36
    assert c[ZOO_NAMES[2]].model.num_proposals == 300 and c[ZOO_NAMES[2]].data.pipeline == "crop"
    assert c[ZOO_NAMES[3]].model.backbone == "resnet101" and c[ZOO_NAMES[3]].train.lr_steps == (27, 33)
    assert c[ZOO_NAMES[4]].model.backbone == "resnet101" and c[ZOO_NAMES[4]].model.num_proposals == 300
    assert c[ZOO_NAMES[0]].data.ms_short_sides == tuple(range(480, 801, 32))


def test_dotted_overrides_and_yaml_floats():
    cfg = load_config(ZOO_NAMES[0], ["train.lr=1e-4", "model.num_proposals=50", "data.batch_size=4"])
    assert cfg.train.lr == 1e-4 and cfg.model.num_proposals == 50 and cfg.data.batch_size == 4


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"train\.lr_step.*did you mean 'train\.lr_steps'"):
        load_config(ZOO_NAMES[0], ["train.lr_step=[1,2]"])


def test_type_error_names_key():
    with pytest.raises(ConfigError, match=r"model\.num_proposals.*int"):
        load_config(ZOO_NAMES[0], ["model.num_proposals=abc"])


def test_unknown_config_name():
    with pytest.raises(ConfigError, match="did you mean"):
        load_config("sparse_rcnn_r50_fpn_1x_cocoo")
