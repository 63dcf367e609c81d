"""Part d's noise-free half: the same gradient through MMDetection's optimiser and ours (dev tool).

The 20-step trajectory cannot see a mistake whose effect is below the float noise that Adam
amplifies from step 2 on (docs/parity-trajectory.md). This check removes that noise: both sides get
the **same gradient** (MMDetection's own, at the checkpoint, on the reference batch:
``REF/CONFIG/fixed_grads.pth``, written by ``tools/make_trajectory.py``), in **float64**, and run
``len(scales)`` optimiser steps of the shortened schedule's first iterations, step k on that gradient
times ``scales[k]`` (1, 3, 0.5). Ours is our trainer's own step (``engine.recipe.build_step``:
TrainStep, the fused AdamW, the clipping and lr schedule we ship), fed through its ``net``: a module
whose loss is ``sum(w * g * s)``, so that backward gives exactly ``g * s``. Compared: the lr and the
norm before clipping of each step, per parameter tensor the update ``w_K - w0`` (float64, L2
relative), and that every other tensor stays bit-identical.

Why the scales: Adam's first update is about ``lr * sign(g)`` whatever the gradient's size, so one
step cannot tell clipping before the step from clipping after it. With the norms above max_norm,
clipped first every step sees a gradient of norm max_norm and the three steps add up to the same
direction; clipped afterwards Adam sees norms in the ratio 1 : 3 : 0.5 and the update differs by
percents. In float64 the weight decay shows too (``w * (1 - lr * wd)`` no longer rounds to w).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from recipe_mistakes import STEPS, inject, short_recipe
from sparse_rcnn.checkpoints import convert_mmdet_state_dict
from sparse_rcnn.common import Processes
from sparse_rcnn.config import TrainConfig, load_config
from sparse_rcnn.engine.faults import TrainingHooks
from sparse_rcnn.engine.recipe import build_step
from sparse_rcnn.models import load_model

# limits (docs/parity-trajectory.md, "Fixed gradient"): our own code, 1 vs 2 threads, is bit-identical; ours
# against MMDetection (fused vs for-loop AdamW) was lr 1.2e-16, norm 1.5e-16, update 6.5e-13 (R-50 1x). The
# smallest injected mistake (weight decay off for 1-d parameters) moves the update by 5e-4: 1e-8 sits between.
FIXED_LR_TOL, FIXED_NORM_TOL, FIXED_UPDATE_TOL = 1e-12, 1e-10, 1e-8
CPU = torch.device("cpu")
MAKE_TRAJECTORY = Path(__file__).with_name("make_trajectory.py")


class FixedGrads(nn.Module):
    """TrainStep's ``net``: its loss ``sum(w * g * scale)`` has the gradient ``g * scale``, exactly."""

    def __init__(self, model: nn.Module, grads: dict[str, torch.Tensor], scales: list[float]) -> None:
        super().__init__()
        named = dict(model.named_parameters())
        self.pairs = [(named[k], g.double()) for k, g in grads.items()]
        self.scales, self.k = list(scales), 0

    def forward(self, images: list, targets: list) -> dict[str, torch.Tensor]:
        scale, self.k = self.scales[self.k], self.k + 1
        return {"loss_fixed": sum((w * (g * scale)).sum() for w, g in self.pairs)}  # type: ignore[dict-item]


def reference_fixed(ref: Path) -> dict:
    """MMDetection's record (make_trajectory.py), names converted to ours."""
    rec = json.loads((ref / "fixed_update.json").read_text())
    rec["update"] = convert_mmdet_state_dict(torch.load(ref / "fixed_update.pth", map_location="cpu"))
    rec["grads"] = convert_mmdet_state_dict(torch.load(ref / "fixed_grads.pth", map_location="cpu"))
    return rec


def our_fixed(name: str, ref: Path, rec: dict, t: TrainConfig, inject_kind: Optional[str] = None) -> dict:
    """Our step (recipe ``t``: the shortened schedule) on the reference's gradients times ``rec['scales']``;
    ``inject_kind``: a deliberate mistake (``recipe_mistakes.inject``)."""
    model = load_model(name, str(ref / "ckpt.pth")).train()
    return fixed_steps(model, rec["grads"], rec["scales"], t, inject_kind)


def fixed_steps(
    model: nn.Module, grads: dict[str, torch.Tensor], scales: list[float], t: TrainConfig, inject_kind: Optional[str]
) -> dict:
    """``len(scales)`` steps of our TrainStep (float64) on ``grads`` times each scale: lr, norms, update."""
    model.double()
    w0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    net = FixedGrads(model, grads, scales)
    optimizer, _, step = build_step(model, net, t, CPU, Processes(), TrainingHooks())
    if inject_kind:
        inject(inject_kind, model, optimizer, step)
    batch = [([torch.zeros(3, 32, 32, dtype=torch.uint8)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])]
    out = []
    with tempfile.TemporaryDirectory() as ckpt_dir:
        for it in range(len(scales)):  # one iteration per epoch, as in the trajectory
            o = step(batch, it, it, CPU, Path(ckpt_dir))
            out.append({"lr": o["lr"], "grad_norm": o["grad_norm"]})
    update = {k: v.detach() - w0[k] for k, v in model.state_dict().items()}
    return {"steps": out, "update": update, "clip": t.clip_grad_norm}


def compare_fixed(ours: dict, rec: dict) -> dict[str, Any]:
    def rel(a: float, b: float) -> float:
        return abs(a - b) / abs(b) if b else abs(a)

    pairs = list(zip(ours["steps"], rec["steps"]))
    res: dict[str, Any] = {"n": len(pairs), "scales": rec["scales"]}
    res["lr"] = max(rel(a["lr"], b["lr"]) for a, b in pairs)
    res["norm"] = max(rel(a["grad_norm"], b["grad_norm"]) for a, b in pairs)
    res["min_norm"], res["clip"] = min(b["grad_norm"] for _, b in pairs), ours["clip"]
    worst, still, moved = (0.0, ""), [], 0
    for key, d in ours["update"].items():
        d_ref = rec["update"].get(key)
        if key not in rec["grads"]:  # no gradient on MMDetection's side: must not move here either
            still += [key] if d.any() or (d_ref is not None and d_ref.any()) else []
            continue
        moved += 1
        worst = max(worst, (((d - d_ref).norm() / d_ref.norm().clamp_min(1e-300)).item(), key))
    res.update(update=worst, still_bad=still, moved=moved, tensors=len(ours["update"]), n_grads=len(rec["grads"]))
    return res


def judge_fixed(res: dict) -> list[tuple[str, str, str, bool]]:
    """(check, value, limit, ok) rows, as trajectory_check.judge's."""
    n, scales = res["n"], "/".join(f"{s:g}" for s in res["scales"])
    clip_ok = res["min_norm"] > res["clip"] > 0  # clipping active in every step: the check can see its order
    return [
        (f"d. fixed grads x{scales}: lr x{n}", f"{res['lr']:.1e}", f"{FIXED_LR_TOL:.0e}", res["lr"] <= FIXED_LR_TOL),
        (f"d. fixed grads: norm x{n} (min {res['min_norm']:.3g} > clip {res['clip']:g})", f"{res['norm']:.1e}",
         f"{FIXED_NORM_TOL:.0e}", res["norm"] <= FIXED_NORM_TOL and clip_ok),
        (f"d. fixed grads: w{n}-w0 f64, {res['moved']} tensors ({res['update'][1][-24:]})", f"{res['update'][0]:.2e}",
         f"{FIXED_UPDATE_TOL:.0e}", res["update"][0] <= FIXED_UPDATE_TOL and res["moved"] == res["n_grads"]),
        (f"d. fixed grads: no-grad tensors ({res['tensors'] - res['moved']})", f"{len(res['still_bad'])} moved",
         "0", not res["still_bad"]),
    ]  # fmt: skip


def make_fixed(ref_root: Path, name: str, oracle_dir: Path) -> None:
    """MMDetection's fixed-gradient record (fixed_update.py), made through the oracle venv if missing."""
    if not all((ref_root / name / f).exists() for f in ("fixed_grads.pth", "fixed_update.pth", "fixed_update.json")):
        cmd = [str(oracle_dir / "venv" / "bin" / "python"), str(MAKE_TRAJECTORY), str(ref_root), name, "--fixed-only"]
        print(f"# making the fixed-gradient record: {' '.join(cmd)}", flush=True)
        subprocess.run([*cmd, "--steps", str(STEPS)], check=True)


def fixed_rows(name: str, ref: Path, inject_kind: Optional[str], save: Optional[Path] = None, against=None) -> list:
    """The fixed-gradient check (fixed_update.py) with our recipe shortened as here; ``against``: a saved
    run of ours as the reference (float noise)."""
    rec = reference_fixed(ref)
    ours = our_fixed(name, ref, rec, short_recipe(load_config(name).train), inject_kind)
    if save:
        torch.save(ours, save)
    if against:
        rec.update({k: v for k, v in torch.load(against).items() if k in ("steps", "update")})
    return judge_fixed(compare_fixed(ours, rec))
