"""Throughput and latency of inference or training steps: the ``sparse-rcnn benchmark`` command.
An exported graph on ONNX Runtime or OpenVINO is timed the same way (``benchmark_detector``).

Synthetic inputs (uint8 noise of a given size from a seeded generator, three fixed ground-truth
boxes per image) so that no data or weights are needed; the same inputs are built by
``benchmarks/mmdet_bench.py`` for the side-by-side comparison with MMDetection. Inference times
``model(images)`` (normalise, pad, backbone, six stages, top-k) under ``no_grad``; ``--train``
times a full step: forward, backward, gradient clipping (L2 norm 1) and an AdamW step.
Results are medians over ``iters`` timed runs after ``warmup`` untimed ones; the JSON keys are
described in BENCHMARKS.md.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from typing import Optional

import torch
from torch import Tensor

from ..common import PRECISIONS
from ..models import SparseRCNN
from .schedule import build_optimizer

log = logging.getLogger(__name__)

# Relative (x1, y1, x2, y2) and labels of the GT boxes of every synthetic image.
_GT_REL = ((0.1, 0.1, 0.4, 0.5), (0.5, 0.2, 0.9, 0.6), (0.3, 0.55, 0.7, 0.95))
_GT_LABELS = (0, 17, 56)


def synthetic_inputs(
    batch_size: int, size: tuple[int, int], num_classes: int = 80
) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """``batch_size`` uint8 (3, H, W) noise images (generator seed 0) and their targets
    (labels taken modulo ``num_classes``)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(batch_size)]
    boxes = torch.tensor(_GT_REL) * torch.tensor([w, h, w, h], dtype=torch.float32)
    targets = [{"boxes": boxes.clone(), "labels": torch.tensor(_GT_LABELS) % num_classes} for _ in range(batch_size)]
    return images, targets


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, iters: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of ``warmup + iters`` calls of ``step``; the first ``warmup`` are the
    untimed ones (with ``--compile`` the first holds the compilation)."""
    times = []
    for _ in range(warmup + iters):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _peak_mem_mb(device: torch.device) -> Optional[float]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS
    except ImportError:
        return None


def run_benchmark(
    model: SparseRCNN,
    *,
    size: tuple[int, int] = (800, 1333),
    batch_size: int = 1,
    iters: int = 5,
    warmup: int = 1,
    train: bool = False,
    device: str | torch.device = "cpu",
    dtype: str = "fp32",
    lr: float = 2.5e-5,
    weight_decay: float = 1e-4,
    clip_grad_norm: float = 1.0,
) -> dict:
    """Time ``model`` (already on ``device``, and already optimised for ``dtype`` at inference) on
    synthetic inputs of ``size`` (H, W). Training uses autocast when ``dtype`` is not fp32.
    Returns the result dict (see BENCHMARKS.md)."""
    device = torch.device(device)
    images, targets = synthetic_inputs(batch_size, size, model.num_classes)
    images = [img.to(device) for img in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if train:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(model, lr=lr, weight_decay=weight_decay)
        amp = dtype != "fp32"
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=PRECISIONS[dtype], enabled=amp):
                loss = sum(model(images, targets).values())
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
    else:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(images)

    result = _summary(_time(step, iters, warmup, device), warmup, batch_size=batch_size, device=device)
    result.update(mode="train" if train else "inference", dtype=dtype, size=list(size), threads=torch.get_num_threads())
    return result


def benchmark_detector(
    detector, *, size: tuple[int, int] = (800, 1333), batch_size: int = 1, iters: int = 5, warmup: int = 1
) -> dict:
    """Time an exported graph's runtime (``deploy.OnnxDetector``, ``deploy.OpenVINODetector``) as
    ``run_benchmark`` times the PyTorch model: on the same synthetic uint8 images of ``size``
    (H, W), the whole call (resize, normalise, pad, graph, boxes back to image pixels)."""
    images, _ = synthetic_inputs(batch_size, size, detector.num_classes)
    arrays = [img.permute(1, 2, 0).contiguous().numpy() for img in images]  # (H, W, 3) as a user passes them
    times = _time(lambda: detector(arrays, batch_size=batch_size), iters, warmup, torch.device("cpu"))
    result = _summary(
        times, warmup, batch_size=batch_size, device=torch.device(getattr(detector, "device", "cpu").lower())
    )
    result.update(
        mode="inference",
        dtype=detector.dtype,
        size=list(size),
        threads=detector.threads,
        runtime=detector.runtime,
        runtime_version=detector.version,
        onnx=str(detector.path),
    )
    return result


def _summary(seconds: list[float], warmup: int, *, batch_size: int, device: torch.device) -> dict:
    """The result fields every benchmark shares, from the seconds of each call (``warmup`` untimed
    ones first)."""
    times = sorted(t * 1e3 for t in seconds[warmup:])
    median = statistics.median(times)
    return {
        "impl": "sparse-rcnn",
        "images_per_s": batch_size / (median / 1e3),
        "latency_ms_median": median,
        "latency_ms_p90": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "latency_ms_all": times,
        "warmup_ms": [t * 1e3 for t in seconds[:warmup]],
        "peak_mem_mb": _peak_mem_mb(device),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "batch_size": batch_size,
        "iters": len(times),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu_model_name(),
    }
