"""Faults during training: killed processes resume exactly, torn checkpoints are skipped,
NaNs are skipped or stop the run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import sparse_rcnn.cli.train as train_cli
from fault_injection import NanAt, with_hooks
from sparse_rcnn import cli
from sparse_rcnn.checkpoints import read_checkpoint
from sparse_rcnn.config import config_from_dict
from sparse_rcnn.engine import Trainer
from train_fixtures import LANDSCAPE, PORTRAIT, make_coco, subprocess_env, tiny_config_dict, train_command, write_yaml

# 5 landscape + 3 portrait images, batch 2: 4 steps per epoch (one mixed), 2 epochs = 8 iterations;
# checkpoints every 2 iterations, so iterations 2 and 6 are mid-epoch.
SIZES = [LANDSCAPE, PORTRAIT, LANDSCAPE, LANDSCAPE, PORTRAIT, LANDSCAPE, PORTRAIT, LANDSCAPE]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    ann, images = make_coco(root, SIZES)
    cfg_yaml = write_yaml(root / "tiny.yaml", tiny_config_dict())
    return ann, images, cfg_yaml


def config(data, **train):
    ann, images, _ = data
    raw = tiny_config_dict(**train)
    raw["data"].update(train_ann=str(ann), train_images=str(images))
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    trainer = Trainer(config(data), output_dir=tmp_path_factory.mktemp("full"), progress=False)
    trainer.fit()
    assert trainer.iter == 8
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())
    assert worst <= 1e-6, f"parameters differ by {worst}"


def wait_for(predicate, proc, timeout=90.0):
    t0 = time.time()
    while not predicate():
        assert proc.poll() is None, f"training ended early: {proc.communicate()[1][-2000:]}"
        assert time.time() - t0 < timeout, "timed out waiting for the training subprocess"
        time.sleep(0.01)


def with_fault(fault, command):
    """``command`` (a ``sparse-rcnn ...`` argv) run through tests/fault_runner.py with ``fault``."""
    return [sys.executable, str(Path(__file__).parent / "fault_runner.py"), fault, "--"] + command[3:]


def resume(data, out):
    trainer = Trainer(config(data), output_dir=out, resume=True, progress=False)
    start = trainer.iter
    trainer.fit()
    return trainer, start


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_resumes_exactly_from_the_last_complete_one(
    data, uninterrupted, tmp_path, caplog
):
    ann, images, cfg_yaml = data
    out = tmp_path / "run"
    proc = subprocess.Popen(
        with_fault("slow-save=6", train_command(cfg_yaml, ann, images, out)),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: any((out / "checkpoints").glob(".iter_0000006.pth.*.tmp")), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not (out / "model_final.pth").exists()
    assert sorted(p.name for p in (out / "checkpoints").glob("iter_*.pth")) == ["iter_0000002.pth", "iter_0000004.pth"]
    trainer, start = resume(data, out)
    assert start == 4
    assert "left by a run killed while writing it" in caplog.text
    assert not list((out / "checkpoints").glob("*.tmp"))
    assert_same_params(trainer.model.state_dict(), uninterrupted)
    iters = [json.loads(line)["iter"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert iters == list(range(1, 9))  # records of the killed run after iteration 4 were dropped, none repeated


@pytest.mark.slow
def test_sigterm_checkpoints_mid_epoch_and_a_torn_newest_checkpoint_falls_back(data, uninterrupted, tmp_path, caplog):
    ann, images, cfg_yaml = data
    out = tmp_path / "run"
    proc = subprocess.run(
        with_fault("sigterm=3", train_command(cfg_yaml, ann, images, out)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = proc.stderr
    assert proc.returncode == 143, err[-2000:]
    assert "SIGTERM: stopped at iteration 3" in err and "Traceback" not in err
    newest = max((out / "checkpoints").glob("iter_*.pth"))
    stopped_at = read_checkpoint(newest)["iter"]
    assert newest.name == "iter_0000003.pth" and stopped_at == 3  # mid-epoch: the epoch has 4 steps
    data_bytes = newest.read_bytes()
    newest.write_bytes(data_bytes[: len(data_bytes) // 2])  # as a non-atomic copy or a full disk would leave it
    trainer, start = resume(data, out)
    assert "unreadable" in caplog.text and "trying the previous checkpoint" in caplog.text
    assert start < stopped_at
    assert_same_params(trainer.model.state_dict(), uninterrupted)


def test_one_nan_step_is_skipped_and_training_goes_on(data, tmp_path, caplog):
    trainer = Trainer(config(data, epochs=1), output_dir=tmp_path, progress=False, hooks=NanAt("3"))
    trainer.fit()
    assert "non-finite loss or gradient at iteration 3: step skipped" in caplog.text
    assert trainer.iter == 4 and trainer.skipped_steps == 1
    steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {3}  # 4 iterations, one without an optimiser update
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values() if v.is_floating_point())
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records] == [0, 0, 1, 1]
    assert records[2]["loss"] is None  # no good step in that logging window


def test_a_stream_of_nans_stops_cleanly_keeping_the_last_good_checkpoint(data, tmp_path, monkeypatch, caplog):
    ann, images, cfg_yaml = data
    monkeypatch.setattr(train_cli, "Trainer", with_hooks(Trainer, NanAt("5-")))
    code = cli.main(
        [
            "train",
            "--config",
            str(cfg_yaml),
            "--train-ann",
            str(ann),
            "--train-images",
            str(images),
            "--output-dir",
            str(tmp_path),
            "--set",
            "train.max_bad_steps=3",
        ]
    )
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "3 non-finite steps in a row (iterations 5-7)" in errors[0] and "iter_0000006.pth" in errors[0]
    assert not (tmp_path / "model_final.pth").exists()
    for path in (tmp_path / "checkpoints").glob("iter_*.pth"):
        ckpt = read_checkpoint(path)  # every kept checkpoint is complete and finite
        assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
