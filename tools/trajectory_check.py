#!/usr/bin/env python
"""Part d of ``tools/parity_check.py``: 20 training steps of ours against MMDetection's (dev tool).

MMDetection's trajectory is ``REF/CONFIG/trajectory.json`` + ``trajectory_final.pth``, written by
``tools/make_trajectory.py`` under the oracle's venv (run here through ``ORACLE_DIR/venv`` when
missing). Ours is our trainer's own step: ``engine.recipe.build_step`` (the AdamW, clipping and
lr schedule we ship) on the model loaded from ``ckpt.pth``, 20 times on the reference batch (part
c's exact network input, handed to the model as the uint8 images it was normalised from). The
schedule is shortened in the declared way of ``make_trajectory.py``: one iteration per epoch (the
step's epoch is its iteration), warm-up over 8 iterations, each milestone m -> m * 20 // epochs.

Compared: the lr of every step (relative, float64 rounding only); the 18 losses and the gradient
norm before clipping of every step (relative); per parameter tensor the total update
``d = w20 - w0``: ``|d_ours - d_ref| / |d_ref|`` (L2 norms over the tensor); tensors MMDetection
leaves unchanged (frozen stem and layer1, BatchNorm statistics) must stay bit-identical; and per
parameter whether it is trained and its AdamW settings (weight decay, betas, eps, ...) must equal
MMDetection's (``trajectory_optimizer.json``). In float32 that is the only place weight decay shows:
AdamW multiplies w by ``1 - lr * wd`` >= 1 - 2.5e-9, which rounds to 1, so at the zoo's lr
(<= 2.5e-4 with wd 1e-4) the decay changes no bit of any weight, in MMDetection or here. Part d
first runs the noise-free fixed-gradient check (``tools/fixed_update.py``; ``--fixed-only``: just it).

    python tools/trajectory_check.py CONFIG [--inject KIND] [--threads N] [--save F] [--against F]

``--inject`` perturbs OUR side only (a deliberate mistake part d must catch); ``--save`` keeps our
run, ``--against`` compares with a saved run of ours instead of MMDetection (float noise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from sparse_rcnn.checkpoints import convert_mmdet_state_dict
from sparse_rcnn.common import Processes
from sparse_rcnn.config import load_config
from sparse_rcnn.engine.faults import TrainingHooks
from sparse_rcnn.engine.recipe import build_step
from sparse_rcnn.models import load_model

sys.path.insert(0, str(Path(__file__).parent))
from fixed_update import fixed_rows, make_fixed  # noqa: E402
from recipe_mistakes import INJECTIONS, STEPS, inject, short_recipe  # noqa: E402, F401 (tests import them here)

# limits (docs/parity-trajectory.md): our own float noise, 1 vs 2 threads over steps 0-1, was 8.2e-6 (losses)
# and 1.3e-3 (grad norm) for R-50 1x, 4.2e-4 and 2.4e-3 for R-101 300-proposal crop on small images (ref_small):
# ~10x the larger. From step 2 Adam turns float noise into percent-level differences (R-101: 0.56 / 0.17 over
# 20 steps), so the later limits are order-of-magnitude bounds only. There a single stage's loss can
# double between 1 and 2 threads (R-50 crop, s5.loss_cls at step 14: 1.04), so steps 2-19 are judged on
# the total loss, whose noise stayed <= 7.4e-2 in all five configs: limit 0.5, about 7x that.
EARLY_STEPS = 2
LR_TOL, LOSS_TOL, GRAD_NORM_TOL, UPDATE_TOL = 1e-12, (5e-3, 0.5), (3e-2, 1.0), 2.0
ADAMW_KEYS = ("weight_decay", "betas", "eps", "amsgrad", "maximize")
MAKE_TRAJECTORY = Path(__file__).with_name("make_trajectory.py")


def reference_batch(ref: Path, model: nn.Module) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Part c's batch as uint8 RGB images + targets; checks our batcher rebuilds the exact input."""
    gts = json.loads((ref / "train_losses.json").read_text())["gt_after_resize"]
    inputs = torch.load(ref / "intermediates_train.pt", map_location="cpu", weights_only=True)["inputs"]
    mean, std = model.batcher.mean, model.batcher.std
    images = [
        (inputs[i, :, :h, :w] * std + mean).round().clamp(0, 255).to(torch.uint8)
        for i, (h, w) in enumerate(g["img_shape"] for g in gts)
    ]
    if not torch.equal(model.batcher(images)[0], inputs):
        raise AssertionError("the uint8 images do not rebuild intermediates_train.pt's input exactly")
    targets = [{"boxes": torch.tensor(g["bboxes"]), "labels": torch.tensor(g["labels"])} for g in gts]
    return images, targets


class LossRecorder(nn.Module):
    """The ``net`` handed to TrainStep: the model itself, keeping each step's 18 losses."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.losses = model, {}

    def forward(self, images: list, targets: list) -> dict[str, torch.Tensor]:
        losses = self.model(images, targets)
        self.losses = {k: v.item() for k, v in losses.items()}
        return losses


def our_trajectory(name: str, ref: Path, inject_kind: Optional[str] = None, steps: int = STEPS, run: int = 0) -> dict:
    """Our trainer's step on the reference batch, the schedule shortened to ``steps``, ``run`` (default
    all) of them; the same record as the reference."""
    model = load_model(name, str(ref / "ckpt.pth")).train()
    images, targets = reference_batch(ref, model)
    net = LossRecorder(model)
    t = short_recipe(load_config(name).train, steps)
    optimizer, _, step = build_step(model, net, t, torch.device("cpu"), Processes(), TrainingHooks())
    if inject_kind:
        inject(inject_kind, model, optimizer, step)
    record = []
    with tempfile.TemporaryDirectory() as ckpt_dir:
        for it in range(run or steps):  # one iteration per epoch: epoch = iteration
            out = step([(images, targets)], it, it, torch.device("cpu"), Path(ckpt_dir))
            if "skipped" in out:
                raise RuntimeError(f"step {it} skipped (non-finite)")
            record.append({"lr": out["lr"], "grad_norm": out["grad_norm"], "losses": dict(net.losses)})
            print(
                f"  ours step {it:2d} lr {out['lr']:.6e} grad_norm {out['grad_norm']:10.5f} loss {out['loss']:.6f}",
                flush=True,
            )
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"trajectory": record, "final": final, "optimizer": param_settings(model, optimizer)}


def param_settings(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, dict]:
    """{parameter name: requires_grad and its group's AdamW settings}, as make_trajectory.py records them."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = {}
    for name, p in model.named_parameters():
        g = group_of.get(id(p))
        out[name] = {"requires_grad": p.requires_grad, **({k: g[k] for k in ADAMW_KEYS} if g else {"group": None})}
    return out


def reference_trajectory(ref_root: Path, name: str, oracle_dir: Path) -> dict:
    """MMDetection's record (made through the oracle venv if missing), final weights in our names."""
    ref = ref_root / name
    cmd = [str(oracle_dir / "venv" / "bin" / "python"), str(MAKE_TRAJECTORY), str(ref_root), name]
    if not (ref / "trajectory.json").exists() or not (ref / "trajectory_final.pth").exists():
        print(f"# making the reference trajectory: {' '.join(cmd)}", flush=True)
        subprocess.run([*cmd, "--steps", str(STEPS)], check=True)
    elif not (ref / "trajectory_optimizer.json").exists():
        subprocess.run([*cmd, "--optimizer-only"], check=True)
    make_fixed(ref_root, name, oracle_dir)
    rec = json.loads((ref / "trajectory.json").read_text())
    sd = torch.load(ref / "trajectory_final.pth", map_location="cpu", weights_only=True)
    rec["final"] = convert_mmdet_state_dict(sd)
    settings = json.loads((ref / "trajectory_optimizer.json").read_text())
    rec["optimizer"] = dict(zip(convert_mmdet_state_dict(dict.fromkeys(settings)), settings.values()))
    return rec


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a)


def compare(ours: dict, ref: dict, w0: dict[str, torch.Tensor], trainable: set[str]) -> dict[str, Any]:
    """The part-d figures: worst relative errors per quantity, with where they occur."""
    o, r = ours["trajectory"], ref["trajectory"][: len(ours["trajectory"])]
    prefix = len(o) < len(ref["trajectory"])
    if len(o) > len(r):
        raise ValueError(f"{len(o)} steps vs {len(r)} in the reference")
    res: dict[str, Any] = {}
    res["lr"] = max((rel(a["lr"], b["lr"]), k) for k, (a, b) in enumerate(zip(o, r)))
    res["lr_equal"] = sum(a["lr"] == b["lr"] for a, b in zip(o, r))
    res["loss"] = max(
        (rel(a["losses"][n], v), k, n) for k, (a, b) in enumerate(zip(o, r)) for n, v in b["losses"].items()
    )
    res["loss_per_step"] = [max(rel(a["losses"][n], v) for n, v in b["losses"].items()) for a, b in zip(o, r)]
    res["total_loss_per_step"] = [rel(sum(a["losses"].values()), sum(b["losses"].values())) for a, b in zip(o, r)]
    res["grad_norm"] = max((rel(a["grad_norm"], b["grad_norm"]), k) for k, (a, b) in enumerate(zip(o, r)))
    res["grad_norm_per_step"] = [rel(a["grad_norm"], b["grad_norm"]) for a, b in zip(o, r)]
    worst_upd, frozen_bad, moved = (0.0, ""), [], 0
    for key, w in w0.items() if not prefix else ():  # the updates: after all the steps only
        d_ref = ref["final"][key].double() - w.double()
        d_ours = ours["final"][key].double() - w.double()
        if key not in trainable or not d_ref.any():
            if not torch.equal(ours["final"][key], ref["final"][key]):
                frozen_bad.append(key)
            continue
        moved += 1
        worst_upd = max(worst_upd, (((d_ours - d_ref).norm() / d_ref.norm()).item(), key))
    res.update(update=worst_upd, frozen_bad=frozen_bad, moved=moved, tensors=len(w0), prefix=prefix)
    res["settings_bad"] = [k for k, v in ref["optimizer"].items() if not same_settings(ours["optimizer"][k], v)]
    res["settings_n"] = len(ref["optimizer"])
    return res


def same_settings(ours: dict, ref: dict) -> bool:
    """Trained alike (a frozen parameter may sit in MMDetection's AdamW: it never gets a gradient)."""
    if not ref["requires_grad"] or "group" in ref:
        return not ours["requires_grad"] or "group" in ours
    return (
        ours["requires_grad"]
        and "group" not in ours
        and all(list(np.atleast_1d(ours[k])) == list(np.atleast_1d(ref[k])) for k in ADAMW_KEYS)
    )


def judge(res: dict) -> list[tuple[str, str, str, bool]]:
    """(check, value, limit, ok) rows for the table."""
    n = len(res["loss_per_step"])
    return [
        (f"d. lr x{n} ({res['lr_equal']} bit-equal)", f"{res['lr'][0]:.1e}", f"{LR_TOL:.0e}", res["lr"][0] <= LR_TOL),
        *phase_rows("18 losses", res["loss_per_step"], LOSS_TOL)[:1],  # steps 0-1: every loss
        *phase_rows("total loss", res["total_loss_per_step"], LOSS_TOL)[1:],  # then the sum (see the limits)
        *phase_rows("grad norm before clip", res["grad_norm_per_step"], GRAD_NORM_TOL),
        (f"d. AdamW settings of {res['settings_n']} params ({','.join(map(short_key, res['settings_bad'][:2]))})",
         f"{len(res['settings_bad'])} differ", "0", not res["settings_bad"]),
        (f"d. w20-w0, {res['moved']} tensors ({short_key(res['update'][1])})", f"{res['update'][0]:.2e}",
         f"{UPDATE_TOL:.0e}", res["update"][0] <= UPDATE_TOL),
        (f"d. unchanged tensors ({res['tensors'] - res['moved']})", f"{len(res['frozen_bad'])} differ", "0",
         not res["frozen_bad"]),
    ][: -2 if res["prefix"] else None]  # fmt: skip


def phase_rows(what: str, per_step: list[float], limits: tuple[float, float]) -> list[tuple[str, str, str, bool]]:
    """Steps before EARLY_STEPS (Adam has not yet amplified the float noise) and after, own limits."""
    rows = []
    n = len(per_step)
    for (lo, hi), limit in zip(((0, min(EARLY_STEPS, n)), (EARLY_STEPS, n)), limits):
        if hi > lo:
            k = max(range(lo, hi), key=per_step.__getitem__)
            rows.append((f"d. {what}, steps {lo}-{hi - 1} (worst s{k})", f"{per_step[k]:.2e}", f"{limit:.0e}",
                         per_step[k] <= limit))  # fmt: skip
    return rows


def short_key(key: str) -> str:
    return key.replace("stages.", "h").replace("backbone.", "bb.")[-30:]


def check_trajectory(
    name: str, ref_root: Path, oracle_dir: Path, inject_kind: Optional[str] = None, save: Optional[Path] = None
) -> list:
    """Run both sides for one config (the fixed-gradient check first); returns the table rows. ``save``:
    keep our trajectory there (and the fixed-gradient run as ``*.fixed.pt``), for ``--against``."""
    ref = reference_trajectory(ref_root, name, oracle_dir)
    rows = fixed_rows(name, ref_root / name, inject_kind, save and save.with_suffix(".fixed.pt"))
    ours = our_trajectory(name, ref_root / name, inject_kind)
    if save:
        torch.save(ours, save)
    return rows + judge(compare(ours, ref, *initial_weights(name, ref_root / name)))


def initial_weights(name: str, ref: Path) -> tuple[dict[str, torch.Tensor], set[str]]:
    model = load_model(name, str(ref / "ckpt.pth"))
    w0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return w0, {k for k, p in model.named_parameters() if p.requires_grad}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument(
        "--oracle-dir", type=Path, default=Path(os.environ.get("ORACLE_DIR", "~/.cache/sparse-rcnn-oracle"))
    )
    ap.add_argument("--ref-root", type=Path, help="reference folder (default ORACLE_DIR/ref)")
    ap.add_argument("--inject", choices=INJECTIONS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", type=Path, help="keep our run in this file")
    ap.add_argument("--against", type=Path, help="compare with this saved run of ours, not MMDetection")
    ap.add_argument("--saved", type=Path, help="judge this saved run of ours instead of running")
    ap.add_argument("--run", type=int, default=0, help="run only the first N steps (no update check)")
    ap.add_argument("--fixed-only", action="store_true", help="only the fixed-gradient check (fixed_update.py)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    oracle_dir = args.oracle_dir.expanduser()
    ref_root = (args.ref_root or oracle_dir / "ref").expanduser()
    if args.fixed_only:
        make_fixed(ref_root, args.config, oracle_dir)
        return show(args.config, fixed_rows(args.config, ref_root / args.config, args.inject, args.save, args.against))
    ref = reference_trajectory(ref_root, args.config, oracle_dir) if not args.against else torch.load(args.against)
    if args.saved:
        ours = torch.load(args.saved)
    else:
        ours = our_trajectory(args.config, ref_root / args.config, args.inject, len(ref["trajectory"]), args.run)
    if args.save:
        torch.save(ours, args.save)
    res = compare(ours, ref, *initial_weights(args.config, ref_root / args.config))
    print("per-step worst loss rel err:", " ".join(f"{v:.1e}" for v in res["loss_per_step"]))
    print("per-step grad-norm rel err: ", " ".join(f"{v:.1e}" for v in res["grad_norm_per_step"]))
    return show(args.config, judge(res))


def show(config: str, rows: list) -> int:
    for check, value, limit, ok in rows:
        print(f"{config[12:34]:<22} {check:<48} {value:>12} {limit:>6}  {'OK' if ok else 'FAIL'}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
