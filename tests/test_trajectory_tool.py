"""Part d's own pieces (tools/trajectory_check.py, tools/make_trajectory.py), without the oracle:
both sides shorten the zoo schedules the same declared way, and each deliberate mistake that
``--inject`` puts in our optimiser does what it says on a toy model."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from fixed_update import FIXED_UPDATE_TOL, compare_fixed, fixed_steps, judge_fixed  # noqa: E402
from make_trajectory import FIXED_SCALES, short_schedule  # noqa: E402
from sparse_rcnn.common import Processes  # noqa: E402
from sparse_rcnn.config import load_config  # noqa: E402
from sparse_rcnn.engine.faults import TrainingHooks  # noqa: E402
from sparse_rcnn.engine.recipe import build_step  # noqa: E402
from trajectory_check import INJECTIONS, inject, param_settings, same_settings, short_recipe  # noqa: E402


def mmdet_schedule(milestones: list[int], max_epochs: int) -> list[dict]:
    """The ``param_scheduler`` of MMDetection's resolved zoo configs."""
    return [
        dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
        dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=milestones, gamma=0.1),
    ]


@pytest.mark.parametrize(
    "name, milestones, max_epochs, expect",
    [
        ("sparse_rcnn_r50_fpn_1x_coco", [8, 11], 12, (13, 18)),
        ("sparse_rcnn_r101_fpn_300_proposals_crop_mstrain_480-800_3x_coco", [27, 33], 36, (15, 18)),
    ],
)
def test_both_sides_shorten_the_schedule_alike(name, milestones, max_epochs, expect):
    theirs = short_schedule(mmdet_schedule(milestones, max_epochs), 20, max_epochs, 8)
    ours = short_recipe(load_config(name).train, 20, 8)
    assert theirs[0]["end"] == ours.warmup_iters == 8
    assert tuple(theirs[1]["milestones"]) == ours.lr_steps == expect
    assert (theirs[1]["begin"], theirs[1]["end"]) == (0, 20)
    _, _, step = build_step(nn.Linear(2, 1), nn.Linear(2, 1), ours, torch.device("cpu"), Processes(), TrainingHooks())
    lrs = [step.lr_at(t, t) for t in range(20)]  # one iteration per epoch
    assert lrs[0] == pytest.approx(2.5e-8) and lrs[6] < 2.5e-5 and lrs[7] == pytest.approx(2.5e-5)
    first, second = expect
    assert lrs[first - 1] == pytest.approx(2.5e-5) and lrs[first] == pytest.approx(2.5e-6)
    assert lrs[second - 1] == pytest.approx(2.5e-6) and lrs[second] == pytest.approx(2.5e-7)


class Toy(nn.Module):
    """A model with the TrainStep interface whose gradients are far above the clip norm (and vary: toy_run)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(8, 4)

    def forward(self, images: list, targets: list) -> dict[str, torch.Tensor]:
        out = self.lin(torch.stack(images).flatten(1))
        return {"s0.loss_cls": 100 * (out**2).sum(), "s0.loss_bbox": 50 * out.sum().abs()}


def toy_run(kind, steps: int = 3):
    model = Toy()
    recipe = short_recipe(load_config("sparse_rcnn_r50_fpn_1x_coco").train)
    optimizer, _, step = build_step(model, model, recipe, torch.device("cpu"), Processes(), TrainingHooks())
    if kind:
        inject(kind, model, optimizer, step)
    torch.manual_seed(1)
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}] * 2
    batches = [[([scale * torch.randn(8) for _ in range(2)], targets)] for scale in (1.0, 10.0, 0.3)[:steps]]
    outs = [step(batch, t, t, torch.device("cpu"), Path("unused")) for t, batch in enumerate(batches)]
    return model, optimizer, outs


def test_injected_mistakes_change_what_they_claim():
    plain, plain_opt, plain_out = toy_run(None)
    assert all(o["grad_norm"] > 10 for o in plain_out)  # clipping is active throughout

    _, opt, out = toy_run("warmup-off-by-one")
    assert [o["lr"] for o in out[:2]] == [plain_out[1]["lr"], plain_out[2]["lr"]]

    model, opt, out = toy_run("no-decay-1d")
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    assert opt.param_groups[1]["params"] == [model.lin.bias]
    ref = param_settings(plain, plain_opt)
    ours = param_settings(model, opt)
    assert [k for k in ref if not same_settings(ours[k], ref[k])] == ["lin.bias"]  # what part d's check sees
    # and the only place it shows: at the recipe's lr the decay changes no bit (see test_decay_is_below_float32)
    assert torch.equal(model.lin.bias, plain.lin.bias)

    model, opt, out = toy_run("clip-after-step")
    assert out[0]["grad_norm"] == plain_out[0]["grad_norm"]  # the same norm is measured before the step
    w0 = Toy().lin.weight.detach()
    d_plain, d_late = plain.lin.weight.detach() - w0, model.lin.weight.detach() - w0
    assert (d_late - d_plain).norm() > 1e-2 * d_plain.norm()  # the update saw the unclipped gradients


@pytest.mark.parametrize("fused", [True, False])
def test_decay_is_below_float32_at_the_zoo_lr(fused):
    """AdamW's decoupled decay multiplies w by 1 - lr * wd; at lr 2.5e-5, wd 1e-4 that rounds to 1 in
    float32 (in torch's fused and for-loop AdamW alike), so no trajectory can show the decay."""
    changed = {}
    for lr in (2.5e-5, 1e-3):
        p = nn.Parameter(torch.randn(1000, generator=torch.Generator().manual_seed(0)))
        w0 = p.detach().clone()
        opt = torch.optim.AdamW([p], lr=lr, weight_decay=1e-4, fused=fused)
        p.grad = torch.zeros_like(p)  # Adam's own update is 0: only the decay could move w
        opt.step()
        changed[lr] = (p.detach() != w0).sum().item()
    assert changed == {2.5e-5: 0, 1e-3: 1000}


class Toyish(nn.Module):
    """Parameters of every kind part d's fixed-gradient check meets: matrix, bias, norm weight, frozen."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.norm, self.frozen = nn.Linear(8, 4), nn.LayerNorm(4), nn.Linear(2, 2)
        with torch.no_grad():
            self.norm.weight.add_(0.1 * torch.randn(4))  # ~1, as the reference's perturbed LayerNorms
        self.frozen.requires_grad_(False)


def mmengine_like(model: nn.Module, grads: dict, scales: list[float]) -> dict:
    """An independent stand-in for MMDetection's path (make_trajectory.fixed_update): torch's for-loop AdamW,
    OptimWrapper's order (backward, clip to max_norm 1, step), mmengine's LinearLR(0.001, end=8) lr."""
    model.double()
    named = dict(model.named_parameters())
    w0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=2.5e-5, weight_decay=1e-4, foreach=False)
    steps = []
    for it, scale in enumerate(scales):
        lr = 2.5e-5 * (0.001 + 0.999 * min(it, 7) / 7)
        for g in opt.param_groups:
            g["lr"] = lr
        sum((named[k] * (g.double() * scale)).sum() for k, g in grads.items()).backward()
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
        opt.step()
        opt.zero_grad()
        steps.append({"lr": lr, "grad_norm": norm.item()})
    update = {k: v.detach() - w0[k] for k, v in model.state_dict().items()}
    return {"steps": steps, "update": update, "grads": grads, "scales": scales}


@pytest.mark.parametrize("kind", [None, *INJECTIONS])
def test_fixed_gradient_check_catches_each_mistake(kind):
    """Part d's noise-free half (tools/fixed_update.py) on a toy model: our shipped TrainStep against an
    independent MMDetection-like optimiser passes to ~1e-15; every injected mistake fails its update row."""
    gen = torch.Generator().manual_seed(3)
    model = Toyish()
    grads = {k: 100 * torch.randn(p.shape, generator=gen) for k, p in model.named_parameters() if p.requires_grad}
    ref = mmengine_like(Toyish(), grads, list(FIXED_SCALES))
    recipe = short_recipe(load_config("sparse_rcnn_r50_fpn_1x_coco").train)
    ours = fixed_steps(model, grads, list(FIXED_SCALES), recipe, kind)
    res = compare_fixed(ours, ref)
    rows = {r[0].split(":")[1].split()[0]: r for r in judge_fixed(res)}  # lr, norm, w3-w0, no-grad
    assert res["min_norm"] > 1 and res["moved"] == 4 and res["tensors"] == 6
    if kind is None:
        assert all(r[3] for r in rows.values()), rows
        assert res["update"][0] < 1e-12 and res["lr"] < 1e-15 and res["norm"] < 1e-14
    else:
        assert not rows["w3-w0"][3], rows  # the update itself shows each mistake, by far
        assert res["update"][0] > 100 * FIXED_UPDATE_TOL  # decay off: ~1e-4 (wd x |w|); the others > 1e-2
        assert rows["lr"][3] == (kind != "warmup-off-by-one")
