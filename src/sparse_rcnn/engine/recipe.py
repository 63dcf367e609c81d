"""The training recipe read from the config, once: the optimiser, the AMP scaler and the step with
its learning-rate schedule, clipping and precision as plain arguments (the config stops here)."""

from __future__ import annotations

import torch
from torch import nn

from ..common import Processes
from ..config import TrainConfig
from ..ops import PRECISIONS
from .faults import TrainingHooks
from .schedule import build_optimizer, learning_rate
from .step import TrainStep


def build_step(
    model: nn.Module, net: nn.Module, t: TrainConfig, device: torch.device, procs: Processes, hooks: TrainingHooks
) -> tuple[torch.optim.AdamW, torch.amp.GradScaler, TrainStep]:
    """(optimizer, scaler, step) for ``model`` (``net``: it or its DDP wrapper) from ``t``."""
    optimizer = build_optimizer(model, lr=t.lr, weight_decay=t.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
    lr_at = learning_rate(
        t.lr, warmup_iters=t.warmup_iters, warmup_factor=t.warmup_factor, steps=t.lr_steps, gamma=t.lr_gamma
    )
    step = TrainStep(
        model,
        net,
        optimizer,
        scaler,
        lr_at=lr_at,
        amp=PRECISIONS.get(t.amp),
        clip_grad_norm=t.clip_grad_norm,
        max_bad_steps=t.max_bad_steps,
        procs=procs,
        hooks=hooks,
    )
    return optimizer, scaler, step
