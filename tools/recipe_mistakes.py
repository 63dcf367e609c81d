"""Part d's recipe on our side: the zoo schedule shortened to 20 steps, and the deliberate optimiser
mistakes ``--inject`` puts into our trainer's step (part d must then fail; tests/test_trajectory_tool.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from sparse_rcnn.config import TrainConfig

STEPS, WARMUP_ITERS = 20, 8
INJECTIONS = ("no-decay-1d", "clip-after-step", "warmup-off-by-one")


def short_recipe(t: TrainConfig, steps: int = STEPS, warmup: int = WARMUP_ITERS) -> TrainConfig:
    """Our recipe with the 20-step mapping: warm-up ``warmup`` iterations, milestones m -> m*steps//epochs."""
    return dataclasses.replace(
        t, warmup_iters=warmup, lr_steps=tuple(m * steps // t.epochs for m in t.lr_steps), epochs=steps
    )


def inject(kind: str, model: nn.Module, optimizer: torch.optim.Optimizer, step: Any) -> None:
    """A deliberate optimiser mistake on our side (part d must then fail)."""
    if kind == "no-decay-1d":  # weight decay off for biases and norm weights (a common paramwise mistake)
        params = optimizer.param_groups[0]["params"]
        optimizer.param_groups[0]["params"] = [p for p in params if p.ndim > 1]
        optimizer.add_param_group({"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0})
    elif kind == "clip-after-step":  # the optimiser steps on unclipped gradients, clipped afterwards
        max_norm, step.clip_grad_norm, plain_step = step.clip_grad_norm, 0.0, optimizer.step

        def step_then_clip(*args: Any, **kwargs: Any) -> Any:
            out = plain_step(*args, **kwargs)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)
            return out

        optimizer.step = step_then_clip
    elif kind == "warmup-off-by-one":
        lr_at = step.lr_at
        step.lr_at = lambda iteration, epoch: lr_at(iteration + 1, epoch)
    else:
        raise ValueError(f"unknown injection {kind!r}; choose from {INJECTIONS}")
