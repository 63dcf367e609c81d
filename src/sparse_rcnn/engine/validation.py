"""Validation during training: COCO box AP of the model on the validation set, every process
evaluating its shard (``evaluation.evaluate`` gathers), stoppable between two batches."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from ..config import DataConfig
from ..evaluation import EvaluationStopped, evaluate

__all__ = ["validate", "EvaluationStopped"]


def validate(
    model: torch.nn.Module,
    dataset: Any,
    data: DataConfig,
    *,
    device: torch.device,
    progress: bool,
    stop: Optional[Callable[[], bool]],
    classwise: bool = False,
) -> tuple[dict[str, float], list[dict]]:
    """(metrics as floats, COCO results) of ``model`` on ``dataset`` with ``data``'s batch size and
    workers. ``stop``: asked before each batch; True raises ``EvaluationStopped``."""
    metrics, results = evaluate(
        model,
        dataset,
        batch_size=data.batch_size,
        device=device,
        workers=data.workers,
        progress=progress,
        stop=stop,
        classwise=classwise,
    )
    return {k: float(v) for k, v in metrics.items()}, results
