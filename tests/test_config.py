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


@pytest.mark.parametrize(
    "config, override, message",
    [
        (
            "sparse_rcnn_r50_fpn_1x_coco",
            "train.lr_step=[1,2]",
            "unknown config key 'train.lr_step'; did you mean 'train.lr_steps'?",
        ),
        (
            "sparse_rcnn_r50_fpn_1x_coco",
            "model.num_proposals=abc",
            "config key 'model.num_proposals' must be int, got 'abc'",
        ),
        ("sparse_rcnn_r50_fpn_1x_coco", "model.test_scale=[800]", "config key 'model.test_scale' must have 2 items"),
        (
            "sparse_rcnn_r50_fpn_1x_coco",
            "model.backbone=resnet152",
            "'model.backbone' must be one of resnet18, resnet34",
        ),
        (
            "sparse_rcnn_r50_fpn_1x_coco",
            "model.num_heads=7",
            "'model.num_heads' (7) must divide model.fpn_channels (256)",
        ),
        ("sparse_rcnn_r50_fpn_1x_coco", "train.lr", "override 'train.lr' must look like section.key=value"),
        ("sparse_rcnn_r50_fpn_1x_cocoo", "train.lr=1e-4", "did you mean 'sparse_rcnn_r50_fpn_1x_coco'?"),
        (
            "{tmp}/typo.yaml",
            "train.lr=1e-4",
            "unknown config key 'model.num_proposal'; did you mean 'model.num_proposals'?",
        ),
        ("{tmp}/broken.yaml", "train.lr=1e-4", "is not valid YAML"),
        ("{tmp}/absent.yaml", "train.lr=1e-4", "absent.yaml' not found"),
    ],
)
def test_config_errors_through_train_set(tmp_path, run_cli, config, override, message):
    (tmp_path / "typo.yaml").write_text("model:\n  num_proposal: 10\n")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    rc, errors = run_cli(
        ["train", "--config", config.format(tmp=tmp_path), "--output-dir", str(tmp_path / "out"), "--set", override]
    )
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()  # stopped before anything was written


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.bad_anotations=skip", "unknown config key 'data.bad_anotations'; did you mean 'data.bad_annotations'?"),
        ("data.flip_prob=abc", "config key 'data.flip_prob' must be float, got 'abc'"),
        ("data.flip_prob=1.5", "config key 'data.flip_prob' must be <= 1"),
        ("data.bad_annotations=ignore", "config key 'data.bad_annotations' must be one of error, skip"),
    ],
)
def test_data_config_errors_through_eval_set(tmp_path, tiny_weights, run_cli, override, message):
    rc, errors = run_cli(
        [
            "eval",
            "--weights",
            tiny_weights,
            "--ann",
            str(tmp_path / "a.json"),
            "--images",
            str(tmp_path),
            "--set",
            override,
        ]
    )
    assert rc == 2 and len(errors) == 1 and message in errors[0], errors


@pytest.mark.parametrize(
    "override",
    [
        "train.lr=inf",
        "train.lr=nan",
        "train.lr=.inf",
        "model.focal_gamma=-.inf",
        "data.flip_prob=.nan",
        "model.pixel_std=[1, .inf, 1]",
    ],
)
def test_non_finite_values_are_refused(override):
    with pytest.raises(ConfigError, match="must be a finite number"):
        load_config("sparse_rcnn_r50_fpn_1x_coco", [override])
