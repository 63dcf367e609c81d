"""`sparse-rcnn benchmark` JSON contract and the fast inference modes, on a tiny model (no timing asserts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sparse_rcnn.cli import main
from sparse_rcnn.engine import synthetic_inputs
from sparse_rcnn.models import build_model
from tiny import tiny_model_config

KEYS = {
    "images_per_s",
    "latency_ms_median",
    "latency_ms_p90",
    "peak_mem_mb",
    "device",
    "dtype",
    "batch_size",
    "size",
    "torch",
    "threads",
    "model",
    "proposals",
    "date",
    "cpu",
    "mode",
    "malloc",
}


@pytest.fixture
def tiny_yaml(tmp_path):
    cfg = {
        k: getattr(tiny_model_config(), k)
        for k in (
            "backbone",
            "fpn_channels",
            "num_proposals",
            "num_stages",
            "num_heads",
            "ffn_dim",
            "dynamic_dim",
            "num_classes",
        )
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "model": cfg}))
    return str(path)


@pytest.mark.parametrize(
    "extra", [[], ["--train", "--batch-size", "1"], ["--dtype", "bf16", "--fold-bn"], ["--winograd", "--fold-bn"]]
)
def test_benchmark_cli_writes_the_json_contract(tiny_yaml, tmp_path, capsys, extra):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "benchmark",
            "--model",
            tiny_yaml,
            "--size",
            "64x96",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--output",
            str(out),
        ]
        + extra
    )
    assert rc == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert KEYS <= set(result)
    assert result["size"] == [64, 96] and result["proposals"] == 8 and result["threads"] == 1
    assert result["mode"] == ("train" if "--train" in extra else "inference")
    assert len(result["latency_ms_all"]) == 2 and len(result["warmup_ms"]) == 1 and result["images_per_s"] > 0
    assert result["latency_ms_p90"] >= result["latency_ms_median"]


def test_benchmark_cli_rejects_bad_arguments(tiny_yaml, capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--model", tiny_yaml, "--size", "64"])
    assert main(["benchmark", "--model", tiny_yaml, "--weights", "x.pth", "--proposals", "10"]) == 2
    if not torch.cuda.is_available():
        assert main(["benchmark", "--model", tiny_yaml, "--device", "cuda"]) == 2


def test_synthetic_targets_are_valid_boxes():
    images, targets = synthetic_inputs(2, (50, 70), num_classes=3)
    assert [tuple(i.shape) for i in images] == [(3, 50, 70)] * 2 and images[0].dtype == torch.uint8
    boxes = targets[0]["boxes"]
    assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes[:, 2] <= 70).all() and (boxes[:, 3] <= 50).all()
    assert targets[0]["labels"].max() < 3


def _detect(model, images):
    with torch.no_grad():
        return model(images)


def test_default_optimize_is_bit_identical_and_fast_modes_stay_close():
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 96, 120), dtype=torch.uint8)]
    model = build_model(tiny_model_config()).eval()
    ref = _detect(model, images)[0]
    state = model.state_dict()

    same = build_model(tiny_model_config())
    same.load_state_dict(state)
    out = _detect(same.optimize_for_inference(), images)[0]
    assert all(torch.equal(out[k], ref[k]) for k in ("boxes", "scores", "labels"))

    for kwargs, tol in [
        (dict(fold_bn=True, channels_last=True), 1e-4),
        (dict(winograd=True, fold_bn=True), 1e-4),
        (dict(dtype="bf16"), 0.1),
    ]:
        fast = build_model(tiny_model_config())
        fast.load_state_dict(state)
        out = _detect(fast.optimize_for_inference(**kwargs), images)[0]
        assert out["boxes"].dtype == torch.float32 and out["scores"].dtype == torch.float32
        # compare the score of every (proposal, class) pair through the sorted top-k lists
        assert (out["scores"] - ref["scores"]).abs().max() < tol, kwargs


def test_optimize_rejects_unknown_dtype_and_winograd_without_fp32_nchw():
    with pytest.raises(ValueError, match="bf16"):
        build_model(tiny_model_config()).optimize_for_inference(dtype="int8")
    for kwargs in (dict(channels_last=True), dict(dtype="bf16")):
        with pytest.raises(ValueError, match="fp32 NCHW"):
            build_model(tiny_model_config()).optimize_for_inference(winograd=True, **kwargs)


def test_benchmark_cli_reports_a_bad_mode_combination(tiny_yaml, caplog):
    assert main(["benchmark", "--model", tiny_yaml, "--winograd", "--channels-last", "--iters", "1"]) == 2
    assert "channels_last" in caplog.text


@pytest.mark.slow
def test_gpu_benchmark_script_runs_end_to_end_on_the_cpu(tmp_path):
    # benchmarks/gpu.py is meant for a GPU machine; --device cpu --quick keeps it from rotting.
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    out = tmp_path / "gpu.json"
    env = {**os.environ, "ORACLE_DIR": str(tmp_path / "no-oracle"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert "oracle environment is absent" in report["mmdet_skipped"]
    inference = ["eager-fp32", "eager-tf32", "eager-fp16", "compile", "cudagraphs", "cudagraphs-fp16"]
    expected = {f"{v} batch 2" for v in inference} | {"train batch 2"}
    assert set(report["summary"]) == expected
    runs = {(r["variant"], r["batch_size"]): r for r in report["runs"]}
    assert runs["cudagraphs", 2]["compile_mode"] == "reduce-overhead" and runs["compile", 2]["first_call_s"] > 0
    assert runs["train", 2]["mode"] == "train" and runs["eager-fp16", 2]["dtype"] == "bf16"  # fp16 on a GPU
    assert all(r["latency_ms_median"] > 0 and r["size"] == [64, 96] for r in report["runs"])
