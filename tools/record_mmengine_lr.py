"""Record MMDetection's learning-rate schedule (dev tool; run with the oracle venv).

Steps mmengine's ``LinearLR(start_factor=0.001, by_epoch=False, begin=0, end=500)`` +
``MultiStepLR(by_epoch=True, milestones=[8, 11], gamma=0.1)`` (the schedulers of
``sparse_rcnn_r50_fpn_1x_coco``'s resolved config) on a dummy AdamW(lr=2.5e-5) exactly as mmengine's
``ParamSchedulerHook`` does (iteration schedulers after every iteration, epoch schedulers after
every epoch) and prints ``{iters_per_epoch: {iteration: [epoch, lr]}}`` as JSON. The values are
pasted into ``tests/test_engine.py``.

    ~/.cache/sparse-rcnn-oracle/venv/bin/python tools/record_mmengine_lr.py
"""

import json
import warnings

import torch
from mmengine.optim.scheduler import LinearLR, MultiStepLR

warnings.filterwarnings("ignore")


def record(iters_per_epoch: int, at: list[int]) -> dict[int, list]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=2.5e-5, weight_decay=1e-4)
    warm = LinearLR(opt, start_factor=0.001, by_epoch=False, begin=0, end=500)
    steps = MultiStepLR(opt, by_epoch=True, milestones=[8, 11], gamma=0.1, begin=0, end=12)
    out, it = {}, 0
    for epoch in range(12):
        for _ in range(iters_per_epoch):
            if it in at:
                out[it] = [epoch, opt.param_groups[0]["lr"]]
            warm.step()
            it += 1
        steps.step()
    return out


if __name__ == "__main__":
    result = {
        # warm-up ends inside epoch 5; steps at epoch 8 (iteration 800) and 11 (iteration 1100)
        100: record(100, [0, 1, 250, 499, 500, 501, 799, 800, 1099, 1100, 1199]),
        # warm-up still running when the epoch-8 step happens (iteration 320): the two compose
        40: record(40, [0, 1, 250, 319, 320, 321, 439, 440, 479, 499, 500]),
    }
    print(json.dumps(result, indent=1))
