"""Resume never silently restarts, one training per folder, pruning never deletes what this run
wrote, the final evaluation never costs the trained model, signals stop a validation pass."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from sparse_rcnn.checkpoints import CheckpointError
from sparse_rcnn.common import OutputError
from sparse_rcnn.config import ConfigError, config_from_dict
from sparse_rcnn.data import CocoDetection, DataError
from sparse_rcnn.engine import Trainer, TrainingInterrupted
from sparse_rcnn.engine.run_lock import RunLock
from sparse_rcnn.engine.run_log import RunLog
from sparse_rcnn.engine.train_state import list_checkpoints, write_training_checkpoint
from sparse_rcnn.evaluation.coco import EvaluationStopped, evaluate
from sparse_rcnn.models import SparseRCNN
from train_fixtures import LANDSCAPE, make_coco, subprocess_env, tiny_config_dict


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    train = make_coco(root, [LANDSCAPE] * 4)
    val = make_coco(root, [LANDSCAPE] * 6, seed=1, name="val")
    return train, val


def config(data, val=False, **train):
    (ann, images), (val_ann, val_images) = data
    raw = tiny_config_dict(**train)
    raw["data"].update(train_ann=str(ann), train_images=str(images))
    if val:
        raw["data"].update(val_ann=str(val_ann), val_images=str(val_images))
    return config_from_dict(raw)


def test_resume_with_no_usable_checkpoint_is_an_error(data, tmp_path):
    Trainer(config(data, max_iters=2), output_dir=tmp_path, progress=False).fit()
    for ckpt in list_checkpoints(tmp_path / "checkpoints"):
        ckpt.write_bytes(ckpt.read_bytes()[:100])  # every checkpoint torn
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    with pytest.raises(CheckpointError, match="can be resumed"):
        Trainer(config(data, max_iters=4), output_dir=tmp_path, resume=True, progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == before


def test_resume_of_a_new_folder_starts_the_run(data, tmp_path):
    trainer = Trainer(config(data, max_iters=1), output_dir=tmp_path / "new", resume=True, progress=False)
    assert trainer.iter == 0


def test_resume_cleans_a_killed_model_final_write(data, tmp_path):
    Trainer(config(data, max_iters=2), output_dir=tmp_path, progress=False).fit()
    torn = tmp_path / ".model_final.pth.abc123.tmp"
    torn.write_bytes(b"half a checkpoint")
    Trainer(config(data, max_iters=4), output_dir=tmp_path, resume=True, progress=False)
    assert not torn.exists()


def test_torn_last_log_line_is_dropped_on_resume(tmp_path):
    log = RunLog(tmp_path, tensorboard=False)
    log.train(1, 0, {"loss": 1.0})
    log.train(2, 0, {"loss": 0.5})
    log.train(3, 0, {"loss": 0.4})
    with open(log.path, "a") as f:
        f.write('{"type": "train", "iter": 4, "lo')  # killed mid-write
    log.keep_until(2)
    assert [json.loads(line)["iter"] for line in log.path.read_text().splitlines()] == [1, 2]


def test_two_trainings_cannot_share_a_folder(data, tmp_path):
    first = Trainer(config(data, max_iters=1), output_dir=tmp_path, progress=False)
    with pytest.raises(OutputError, match="in use by another training"):
        Trainer(config(data, max_iters=1), output_dir=tmp_path, progress=False)
    first.fit()  # releases the lock
    Trainer(config(data, max_iters=2), output_dir=tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_lock_of_a_killed_process_is_not_stale(tmp_path):
    code = (
        "from sparse_rcnn.engine.run_lock import RunLock; import time; "
        f"lock = RunLock({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=subprocess_env())
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(OutputError, match=f"pid {proc.pid}"):
        RunLock(tmp_path)
    proc.kill()
    proc.wait()
    RunLock(tmp_path).release()  # the kernel released it with the process


def test_pruning_keeps_checkpoints_newer_than_the_one_written(tmp_path):
    folder = tmp_path / "checkpoints"
    for it in (50, 60):  # another run's, not resumable here
        write_training_checkpoint(folder, {"iter": it}, iteration=it, keep=3)
    for it in (2, 4, 6, 8):
        write_training_checkpoint(folder, {"iter": it}, iteration=it, keep=3)
        assert (folder / f"iter_{it:07d}.pth").exists()
    assert [p.name for p in list_checkpoints(folder)] == [f"iter_{i:07d}.pth" for i in (60, 50, 8, 6, 4)]


def test_failing_final_evaluation_keeps_the_trained_model(data, tmp_path, monkeypatch):
    import sparse_rcnn.engine.validation as validation

    def broken(*a, **k):
        raise DataError("annotation 7: area must be a number, got None")

    monkeypatch.setattr(validation, "evaluate", broken)
    with pytest.raises(DataError):
        Trainer(config(data, val=True, max_iters=2), output_dir=tmp_path, progress=False).fit()
    assert (tmp_path / "model_final.pth").is_file()


def test_a_signal_stops_validation_at_the_next_batch(data, tmp_path, monkeypatch):
    calls = []
    real = SparseRCNN.detect_resized
    trainer = Trainer(config(data, val=True, max_iters=4, eval_interval=1), output_dir=tmp_path, progress=False)

    def detect(self, *a, **k):
        if not self.training:
            calls.append(1)
            trainer.signals.signum = signal.SIGTERM  # as the handler does
        return real(self, *a, **k)

    monkeypatch.setattr(SparseRCNN, "detect_resized", detect)
    with pytest.raises(TrainingInterrupted) as e:
        trainer.fit()
    assert e.value.signum == signal.SIGTERM and len(calls) == 1  # 1 of the 6 validation images
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")][0] == "iter_0000002.pth"


def test_evaluate_stop(data, tmp_path):
    (_, _), (val_ann, val_images) = data
    dataset = CocoDetection(val_ann, val_images, train=False)
    trainer = Trainer(config(data, max_iters=1), output_dir=tmp_path, progress=False)
    asked = []
    t0 = time.perf_counter()
    with pytest.raises(EvaluationStopped):
        evaluate(trainer.model, dataset, stop=lambda: asked.append(1) or len(asked) > 2, progress=False)
    assert len(asked) == 3 and time.perf_counter() - t0 < 60


def test_batch_larger_than_the_dataset_is_refused(data, tmp_path):
    cfg = config(data, max_iters=1)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=5))
    with pytest.raises(ConfigError, match="more than the 4 training images"):
        Trainer(cfg, output_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_killed_data_loader_worker_is_one_line_with_a_hint(run_cli, data, tmp_path, monkeypatch):
    (ann, images), _ = data

    def killed(self):
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. ")

    monkeypatch.setattr(Trainer, "fit", killed)
    from train_fixtures import write_yaml

    cfg = write_yaml(tmp_path / "tiny.yaml", tiny_config_dict())
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
            str(tmp_path / "run"),
        ]
    )
    assert rc == 1 and "pid 4242" in errors[0] and "--resume" in errors[0]


def test_error_in_a_data_loader_worker_is_one_line(run_cli, tiny_weights, tmp_path):
    ann, images = make_coco(tmp_path, [LANDSCAPE] * 3)
    coco = json.loads(ann.read_text())  # the model's classes: evaluation matches them by name
    for cat, name in zip(coco["categories"], ["cat", "dog", "bird"]):
        cat["name"] = name
    ann.write_text(json.dumps(coco))
    (images / "001.png").write_bytes(b"not a png")
    rc, errors = run_cli(
        ["eval", "--weights", tiny_weights, "--ann", str(ann), "--images", str(images), "--workers", "1"]
    )
    assert rc == 2 and errors[0].startswith("cannot evaluate on") and "001.png" in errors[0], errors


def test_umask_applies_to_checkpoints(data, tmp_path):
    import os
    import stat

    old = os.umask(0o002)
    try:
        Trainer(config(data, max_iters=2), output_dir=tmp_path, progress=False).fit()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "model_final.pth").st_mode) == 0o664
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o664 for p in list_checkpoints(tmp_path / "checkpoints"))
    assert torch.load(tmp_path / "model_final.pth", weights_only=True)["format"] == "sparse-rcnn"
