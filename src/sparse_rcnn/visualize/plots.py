"""The evaluation report's plots (PNG, matplotlib): per-class AP, precision-recall curves, the
confusion matrix and F1 against the score threshold. Each class has its ``class_color``
everywhere; the figures grow with the number of classes so that names stay legible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..common import naming
from ..evaluation.analysis import Analysis
from ..evaluation.errors import normalise_rows
from ..evaluation.thresholds import best, f1_at
from .draw import class_color

LEGEND_MAX = 20  # more classes than this: no per-class legend (colours and the per-class plot say it)


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Save and close a figure (PNG, 100 dpi, cropped to its content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path):  # a full disk: the path, not PIL's bare OSError
        fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path


def tile_grid(n: int, *, columns: int = 4, tile_height: float = 4.3):
    """A figure of ``n`` image tiles (at least one), ``columns`` wide, axes off -> (figure, list of axes)."""
    n = max(1, n)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = pyplot().subplots(rows, cols, figsize=(4.0 * cols, tile_height * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)


def plot_class_ap(result: Analysis, path: Path) -> Path:
    """Horizontal bars: AP@[.5:.95] per class in its colour, AP50 as a black tick; value labels."""
    plt = pyplot()
    c = result.num_classes
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.35 * c + 1.2)))
    y = np.arange(c)[::-1]
    ap = np.clip(result.ap_all, 0, None)
    ax.barh(y, ap, color=[class_color(k) for k in range(c)], height=0.7, label="AP@[.5:.95]")
    ap50 = result.ap[0.5]
    has = ap50 >= 0
    ax.plot(ap50[has], y[has], "|", color="black", markersize=14, markeredgewidth=2.5, label="AP50")
    for k in range(c):
        text = f"{result.ap_all[k]:.3f}" if result.ap_all[k] >= 0 else "no ground truth"
        right = max(ap[k], ap50[k] + 0.01)  # after the bar and the AP50 tick
        ax.text(min(right + 0.01, 0.80), y[k], text, va="center", fontsize=9)
    ax.set_yticks(y, [f"{n} ({int(g)})" for n, g in zip(result.class_names, result.num_gt)])
    ax.set(xlim=(0, 1), xlabel="average precision (0-1)", title="AP per class (ground-truth boxes in brackets)")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def _mean_curve(p: np.ndarray) -> np.ndarray:
    """(R, C) -> (R,) mean over the classes that have ground truth (COCO's -1 left out)."""
    valid = p > -1
    n = valid.sum(axis=1)
    return np.where(n > 0, np.where(valid, p, 0).sum(axis=1) / np.maximum(n, 1), np.nan)


def plot_pr_curves(result: Analysis, path: Path) -> Path:
    """Precision against recall at IoU 0.5 and 0.75: every class (thin, its colour) and the mean
    over classes (thick black; its area is the AP50 / AP75 of the metrics)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax, iou in zip(axes, (0.5, 0.75)):
        p = result.pr[iou]
        for k, name in enumerate(result.class_names):
            if (p[:, k] > -1).any():
                ax.plot(result.recall, p[:, k], color=class_color(k), lw=1.3, label=f"{name} {result.ap[iou][k]:.3f}")
        mean_ap = (
            float(np.nanmean(np.where(result.ap[iou] >= 0, result.ap[iou], np.nan)))
            if (result.ap[iou] >= 0).any()
            else 0.0
        )
        ax.plot(result.recall, _mean_curve(p), color="black", lw=3, label=f"all classes {mean_ap:.3f}")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", title=f"precision-recall at IoU {iou} (AP in legend)")
        ax.grid(alpha=0.3)
        if result.num_classes <= LEGEND_MAX or iou == 0.75:
            handles, labels = ax.get_legend_handles_labels()
            if result.num_classes > LEGEND_MAX:
                handles, labels = handles[-1:], labels[-1:]
            ax.legend(handles, labels, loc="lower left", fontsize=8)
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_pr_per_class(result: Analysis, path: Path) -> Path:
    """One small plot per class: its precision-recall curves at IoU 0.5 (solid) and 0.75 (dashed)."""
    plt = pyplot()
    c = result.num_classes
    cols = min(c, 4)
    rows = -(-c // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False, sharex=True, sharey=True)
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k >= c:
            ax.axis("off")
            continue
        for iou, style in ((0.5, "-"), (0.75, "--")):
            p = result.pr[iou][:, k]
            if (p > -1).any():
                ax.plot(
                    result.recall, p, style, color=class_color(k), lw=2, label=f"IoU {iou}: AP {result.ap[iou][k]:.3f}"
                )
        ax.set_title(f"{result.class_names[k]} ({int(result.num_gt[k])} boxes)", fontsize=10)
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=9)
        if k % cols == 0:
            ax.set_ylabel("precision")
        if k // cols == rows - 1 or k + cols >= c:
            ax.set_xlabel("recall")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path, *, normalised: bool) -> Path:
    """The (C + 1, C + 1) matrix of ``evaluation.errors`` as a heat map with the numbers in the cells."""
    plt = pyplot()
    labels = [*class_names, "background"]
    n = len(labels)
    values = normalise_rows(matrix) if normalised else matrix
    side = max(5.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    shown = np.ma.masked_where(np.eye(n, dtype=bool) & (np.arange(n) == n - 1), values)  # background x background
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalised else max(1, int(values.max())))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row" if normalised else "boxes")
    if n <= 26:
        top = values.max() if values.size else 1
        for i in range(n):
            for j in range(n):
                if i == n - 1 and j == n - 1:
                    continue
                v = values[i, j]
                text = (f"{v:.2f}" if v else "0") if normalised else str(int(v))
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9 if n <= 12 else 7,
                    color="white" if top and v > 0.6 * top else "black",
                )
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    for tick, k in zip(ax.get_xticklabels(), range(n)):
        tick.set_color(class_color(k) if k < n - 1 else "black")
    for tick, k in zip(ax.get_yticklabels(), range(n)):
        tick.set_color(class_color(k) if k < n - 1 else "black")
    ax.set(xlabel="predicted class (background: a miss)", ylabel="true class (background: a false alarm)")
    what = "each row divided by its total" if normalised else "numbers of boxes"
    ax.set_title(f"confusion matrix at IoU 0.5, chosen score thresholds\n({what})")
    return save_figure(fig, path)


def plot_f1(result: Analysis, path: Path) -> Path:
    """Left: F1 against the score threshold, global (black) and per class, each optimum marked.
    Right: the global precision and recall, with the chosen threshold."""
    plt = pyplot()
    # Sparse R-CNN's scores can stay far below 1: the axis ends just above the highest score.
    top_score = float(result.matches.det_score.max()) if len(result.matches.det_score) else 1.0
    hi = min(1.0, max(0.05, np.ceil(top_score * 1.05 * 20) / 20))
    grid = np.linspace(0, hi, 301)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    for k, (name, table) in enumerate(zip(result.class_names, result.f1_per_class)):
        row = best(table)
        if row is None:
            continue
        ax.plot(
            grid,
            f1_at(table, grid),
            color=class_color(k),
            lw=1.3,
            label=f"{name}: best {row['f1']:.2f} at {row['threshold']:.2f}",
        )
        ax.plot([row["threshold"]], [row["f1"]], "o", color=class_color(k), markeredgecolor="black")
    top = best(result.f1_global)
    if top is not None:
        ax.plot(
            grid,
            f1_at(result.f1_global, grid),
            color="black",
            lw=3,
            label=f"all classes: best {top['f1']:.2f} at {top['threshold']:.2f}",
        )
        ax.plot([top["threshold"]], [top["f1"]], "*", color="gold", markersize=18, markeredgecolor="black")
    ax.set(
        xlim=(0, hi),
        ylim=(0, 1.02),
        xlabel="score threshold (keep score >= t)",
        ylabel="F1 at IoU 0.5",
        title="F1 against the score threshold (markers: the chosen thresholds)",
    )
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if result.num_classes > LEGEND_MAX:
        handles, labels = handles[-1:], labels[-1:]
    if handles:
        ax.legend(handles, labels, loc="upper right", fontsize=8)
    table = result.f1_global
    thr = table["threshold"][::-1]
    idx = np.searchsorted(thr, grid, side="left")
    ok = idx < len(thr)
    for key, color in (("precision", "tab:blue"), ("recall", "tab:orange")):
        values = np.full(len(grid), np.nan)
        values[ok] = table[key][::-1][idx[ok]]
        ax2.plot(grid, values, color=color, lw=2, label=key)
    if top is not None:
        ax2.axvline(top["threshold"], color="black", ls="--", lw=1.5, label=f"chosen {top['threshold']:.2f}")
    ax2.set(xlim=(0, hi), ylim=(0, 1.02), xlabel="score threshold", title="all classes: precision and recall")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper right", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    return save_figure(fig, path)
