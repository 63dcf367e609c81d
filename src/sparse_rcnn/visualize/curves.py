"""Training curves (PNG) from the trainer's ``log.jsonl``: losses, learning rate, validation AP."""

from __future__ import annotations

import json
from pathlib import Path

from ..common import naming


def plot_training_curves(log_jsonl: str | Path, path: str | Path) -> None:
    """Training loss, its terms, learning rate and validation AP from the trainer's JSONL log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train: list[dict] = []
    val: list[dict] = []
    for line in Path(log_jsonl).read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") in ("train", "val"):
            (val if rec["type"] == "val" else train).append(rec)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if train:
        it = [r["iter"] for r in train]
        axes[0].plot(it, [r["loss"] for r in train], label="total")
        for key in ("loss_cls", "loss_bbox", "loss_iou"):
            if key in train[0]:
                axes[0].plot(it, [r[key] for r in train], label=key, alpha=0.7)
        axes[0].set_yscale("log")
        axes[0].legend()
        axes[1].plot(it, [r["lr"] for r in train])
    axes[0].set(title="training loss", xlabel="iteration")
    axes[1].set(title="learning rate", xlabel="iteration")
    if val:
        axes[2].plot([r["iter"] for r in val], [r["bbox_mAP"] for r in val], "o-", label="AP")
        axes[2].plot([r["iter"] for r in val], [r["bbox_mAP_50"] for r in val], "s--", label="AP50")
        axes[2].legend()
    axes[2].set(title="validation box AP", xlabel="iteration")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with naming(path):
        fig.savefig(path, dpi=100)
    plt.close(fig)
