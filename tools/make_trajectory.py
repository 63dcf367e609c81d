#!/usr/bin/env python
"""MMDetection's own 20-step training trajectory on the reference batch (dev tool; oracle venv only).

Run with the venv of ``shared/mmdet-reference`` (it imports mmdet, mmengine and the toolkit's
``make_reference.py``), on a folder ``make_reference.py`` wrote (any ``--seed`` / ``--image-sizes``):

    ~/.cache/sparse-rcnn-oracle/venv/bin/python tools/make_trajectory.py REF_ROOT CONFIG [--steps 20]

It loads ``REF_ROOT/CONFIG/ckpt.pth`` into a model built from the resolved config saved there, builds
the config's own ``optim_wrapper`` (AdamW, weight decay, ``clip_grad``) with mmengine's
``build_optim_wrapper`` and its ``param_scheduler`` list with mmengine's registry, and runs
``model.train_step`` ``--steps`` times on the same batch (``make_reference.train_data``: the 1x
resize, no flip; the batch of part c), stepping the schedulers as mmengine's ``ParamSchedulerHook``
does. The schedule is shortened so that both phases fit (the mapping ``tools/trajectory_check.py``
applies to sparse-rcnn's recipe in the same way):

* one iteration per epoch: after every step the iteration-based schedulers step, then the
  epoch-based ones (an epoch ends after every step);
* ``LinearLR`` (iteration based, ``end=500``): ``end`` -> ``--warmup`` (8: warm-up over steps 0-7);
* ``MultiStepLR`` (epoch based): every epoch number e (``milestones``, ``begin``, ``end``) ->
  ``e * steps // max_epochs``: 1x [8, 11] of 12 -> [13, 18]; 3x [27, 33] of 36 -> [15, 18].

Writes to ``REF_ROOT/CONFIG``: ``trajectory_optimizer.json`` (per parameter: requires_grad and the
AdamW settings of its group; ``--optimizer-only`` writes just this), ``trajectory.json`` (per step
the 18 losses, the gradient norm before clipping as ``OptimWrapper`` logs it, the lr the step used;
the schedule as run) and ``trajectory_final.pth`` (the state dict after the last step).

The fixed-gradient record (part d's noise-free half, ``tools/fixed_update.py``; ``--fixed-only``
writes just this): MMDetection's own gradient at the checkpoint on the same batch (its train_step's
loss and backward, no step) -> ``fixed_grads.pth``; then, with the model in float64, the config's
optimiser wrapper and schedulers run ``len(FIXED_SCALES)`` steps through ``update_params`` on the
loss ``sum(w * g * s)`` whose gradient is exactly that gradient times the step's scale s, and the
update ``w_K - w0`` (float64) -> ``fixed_update.pth``, with each step's lr and norm before
clipping -> ``fixed_update.json``. The scales differ so that clipping before the step (every step
sees norm max_norm) and after it (Adam sees the raw norms) give different updates.
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch

TOOLKIT = Path(os.environ.get("MMDET_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "mmdet-reference"))
WARMUP_ITERS = 8
FIXED_SCALES = (1.0, 3.0, 0.5)  # gradient scale of each fixed-gradient step


def short_schedule(param_scheduler: list, steps: int, max_epochs: int, warmup: int) -> list:
    """The config's schedulers with the 20-step mapping of the module docstring applied."""
    out = []
    for s in copy.deepcopy(param_scheduler):
        if s.get("by_epoch", True):
            for key in ("begin", "end"):
                if key in s:
                    s[key] = s[key] * steps // max_epochs
            if "milestones" in s:
                s["milestones"] = [m * steps // max_epochs for m in s["milestones"]]
        elif s["type"] == "LinearLR":
            if s.get("begin", 0) != 0:
                raise ValueError(f"warm-up beginning at {s['begin']}: not the zoo recipe")
            s["end"] = warmup
        else:
            raise ValueError(f"unexpected iteration-based scheduler {s['type']}")
        out.append(s)
    return out


def param_groups(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """{parameter name: its requires_grad and its group's AdamW settings (None: not optimised)}."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    keys = ("weight_decay", "betas", "eps", "amsgrad", "maximize")
    out = {}
    for name, p in model.named_parameters():
        g = group_of.get(id(p))
        out[name] = {"requires_grad": p.requires_grad, **({k: g[k] for k in keys} if g else {"group": None})}
    return out


def fixed_update(model: torch.nn.Module, data: dict, optimiser, hub, out_dir: Path, cfg) -> None:
    """The fixed-gradient record of the module docstring."""
    batch = model.data_preprocessor(copy.deepcopy(data), True)  # train_step's own forward and loss
    total, _ = model.parse_losses(model(**batch, mode="loss"))
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.save(grads, out_dir / "fixed_grads.pth")
    model.zero_grad(set_to_none=True)
    model.double()  # no float32 rounding in w1 - w0: only the optimiser's arithmetic differs
    named = dict(model.named_parameters())
    w0 = {n: p.detach().clone() for n, p in named.items()}
    optim_wrapper, step_schedulers = optimiser(model)
    steps = []
    for scale in FIXED_SCALES:
        lr = optim_wrapper.get_lr()["lr"][0]
        loss = sum((named[n] * (g.double() * scale)).sum() for n, g in grads.items())
        optim_wrapper.update_params(loss)  # backward (grad = g * scale exactly), clip, AdamW step, zero_grad
        steps.append(dict(scale=scale, lr=lr, grad_norm=hub.get_scalar("train/grad_norm").current()))
        step_schedulers()
        print(f"fixed-gradient step: {steps[-1]}", flush=True)
    update = {n: p.detach() - w0[n] for n, p in named.items()}
    torch.save(update, out_dir / "fixed_update.pth")
    clip = cfg.optim_wrapper.get("clip_grad") or {}
    record = dict(
        scales=list(FIXED_SCALES), steps=steps, dtype="float64", clip_grad=dict(clip), total_norm=total.item()
    )
    (out_dir / "fixed_update.json").write_text(json.dumps(record, indent=1, default=str))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref_root", type=Path, help="a folder make_reference.py wrote (holds inputs/ and CONFIG/)")
    ap.add_argument("config", help="2.x config name, e.g. sparse_rcnn_r50_fpn_1x_coco")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=WARMUP_ITERS, help="LinearLR end, in iterations")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--optimizer-only", action="store_true", help="write trajectory_optimizer.json only")
    ap.add_argument("--fixed-only", action="store_true", help="write the fixed-gradient record only")
    args = ap.parse_args()
    sys.path.insert(0, str(TOOLKIT))
    import make_reference as mr  # the toolkit's own model builder and training batch
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import PARAM_SCHEDULERS, init_default_scope
    from mmengine.runner.checkpoint import load_checkpoint

    torch.set_num_threads(args.threads)
    init_default_scope("mmdet")
    out_dir = args.ref_root / args.config
    name3 = json.loads((args.ref_root / "configs.json").read_text())[args.config]
    cfg = Config.fromfile(str(out_dir / f"config_{name3}.py"))
    gt_file = json.loads((args.ref_root / "inputs" / "gt.json").read_text())
    img_paths = [str(args.ref_root / "inputs" / n) for n in gt_file["images"]]
    shapes = [tuple(s) for s in gt_file["shapes_hw"]]
    data = mr.train_data(cfg, img_paths, shapes, gt_file["gt_original_coords"])

    def fresh_model() -> torch.nn.Module:
        mr.seed_all(json.loads((args.ref_root / "run_args.json").read_text())["seed"] + 7)
        model = mr.build_model(cfg)
        load_checkpoint(model, str(out_dir / "ckpt.pth"), map_location="cpu", strict=True, revise_keys=[])
        return model.train()

    max_epochs = cfg.train_cfg.max_epochs
    sched_cfg = short_schedule(cfg.param_scheduler, args.steps, max_epochs, args.warmup)
    hub = MessageHub.get_current_instance()

    def optimiser(model: torch.nn.Module) -> tuple:
        """The config's optim_wrapper and schedulers, and a function stepping the schedulers."""
        optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optim_wrapper)) for s in sched_cfg]

        def step_schedulers() -> None:
            for s in schedulers:  # ParamSchedulerHook.after_train_iter
                if not s.by_epoch:
                    s.step()
            for s in schedulers:  # after_train_epoch: every step ends an epoch here
                if s.by_epoch:
                    s.step()

        return optim_wrapper, step_schedulers

    if not args.optimizer_only:
        fixed_update(fresh_model(), data, optimiser, hub, out_dir, cfg)
    if args.fixed_only:
        return 0
    model = fresh_model()
    optim_wrapper, step_schedulers = optimiser(model)
    (out_dir / "trajectory_optimizer.json").write_text(json.dumps(param_groups(model, optim_wrapper.optimizer)))
    if args.optimizer_only:
        return 0

    steps = []
    for t in range(args.steps):
        t0 = time.perf_counter()
        lr = optim_wrapper.get_lr()["lr"]
        log_vars = model.train_step(copy.deepcopy(data), optim_wrapper)
        grad_norm = hub.get_scalar("train/grad_norm").current()
        step_schedulers()
        losses = {k: float(v.detach()) for k, v in log_vars.items() if k != "loss" and "loss" in k}
        steps.append(
            dict(lr=lr[0], lr_groups=lr, grad_norm=grad_norm, losses=losses, total=float(log_vars["loss"].detach()))
        )
        print(
            f"step {t:2d} lr {lr[0]:.6e} grad_norm {grad_norm:10.5f} loss {float(log_vars['loss']):.6f} "
            f"({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
    torch.save(model.state_dict(), out_dir / "trajectory_final.pth")
    record = dict(
        config=args.config,
        steps=args.steps,
        iters_per_epoch=1,
        max_epochs=max_epochs,
        warmup_iters=args.warmup,
        param_scheduler=sched_cfg,
        optim_wrapper=cfg.optim_wrapper.to_dict() if hasattr(cfg.optim_wrapper, "to_dict") else cfg.optim_wrapper,
        optimizer_repr=repr(optim_wrapper.optimizer),
        threads=args.threads,
        trajectory=steps,
    )
    (out_dir / "trajectory.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {out_dir / 'trajectory.json'} and trajectory_final.pth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
