"""A look at a detection dataset before training on it (``sparse-rcnn show-data``): images with
their ground-truth boxes, boxes per class, box sizes, and the problems the validator found.

Takes any dataset like ``data.CocoDetection`` built with ``train=False``: ``len``, item ``i`` =
(image (3, H, W) uint8, target with ``boxes`` xyxy and ``labels``), ``class_names``; optionally
``annotation(i)`` (boxes, labels without decoding the image), ``file_name(i)`` and ``problems``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..data.resize import resize_tensor
from .draw import class_color, draw_detections
from .html import figure, swatch, table, write_page
from .plots import pyplot, save_figure, tile_grid

log = logging.getLogger(__name__)
TILE = 384
SHOW_PROBLEMS = 200  # problems listed on the page (all of them go to problems.txt)


def _annotations(dataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every item's (n, 4) xyxy boxes and (n,) labels; decodes the images only when the dataset
    cannot give its annotations without."""
    boxes, labels = [], []
    for i in range(len(dataset)):
        if hasattr(dataset, "annotation"):
            b, lab = dataset.annotation(i)
        else:
            target = dataset[i][1]
            b, lab = target["boxes"], target["labels"]
        boxes.append(np.asarray(b, dtype=np.float64).reshape(-1, 4))
        labels.append(np.asarray(lab, dtype=np.int64).reshape(-1))
    return boxes, labels


def save_samples(dataset, path: Path, indices: list[int], *, columns: int = 4) -> Path:
    """A grid of the items ``indices`` with their boxes and class names in the class colours."""
    fig, axes = tile_grid(len(indices), columns=columns)
    for ax, i in zip(axes, indices):
        image, target = dataset[i]
        h, w = image.shape[1:]
        scale = TILE / max(h, w)
        image = resize_tensor(image, (max(1, round(w * scale)), max(1, round(h * scale))))
        boxes = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4) * scale
        image = draw_detections(
            image, boxes, torch.as_tensor(target["labels"]).tolist(), dataset.class_names, font_size=max(11, TILE // 30)
        )
        ax.imshow(image.permute(1, 2, 0).numpy())
        name = dataset.file_name(i) if hasattr(dataset, "file_name") else f"item {i}"
        ax.set_title(f"{Path(name).name}: {len(boxes)} boxes, {w}x{h} px", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_class_counts(class_names, labels: list[np.ndarray], path: Path) -> Path:
    """Boxes per class and images containing each class (horizontal bars, class colours)."""
    plt = pyplot()
    c = len(class_names)
    all_labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    boxes = np.bincount(all_labels, minlength=c)[:c]
    images = np.bincount(np.concatenate([np.unique(lab) for lab in labels]) if labels else all_labels, minlength=c)[:c]
    fig, axes = plt.subplots(1, 2, figsize=(12, max(2.5, 0.32 * c + 1.3)), sharey=True)
    y = np.arange(c)[::-1]
    for ax, counts, title in ((axes[0], boxes, "boxes per class"), (axes[1], images, "images containing the class")):
        ax.barh(y, counts, color=[class_color(k) for k in range(c)], height=0.7)
        for k in range(c):
            ax.text(counts[k], y[k], f" {counts[k]}", va="center", fontsize=9)
        ax.set(title=title, xlabel="count")
        ax.set_xlim(0, max(1, counts.max()) * 1.15)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, class_names)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_box_sizes(boxes: list[np.ndarray], path: Path) -> Path:
    """Histograms of box size (sqrt of the area, pixels; COCO's small/medium/large limits marked)
    and of aspect ratio (w / h)."""
    plt = pyplot()
    b = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    ok = (w > 0) & (h > 0)
    size, aspect = np.sqrt(w[ok] * h[ok]), w[ok] / h[ok]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    if len(size):
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

        bins = np.geomspace(max(1.0, size.min()), max(size.max(), 2.0), 40)
        ax.hist(size, bins=bins, color="#4363d8")
        ax2.hist(aspect, bins=np.geomspace(max(aspect.min(), 1e-2), max(aspect.max(), 1.01), 40), color="#3cb44b")
        for a, ticks in (
            (ax, [2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024]),
            (ax2, [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 10]),
        ):
            a.set_xscale("log")
            lo, hi = a.get_xlim()
            a.xaxis.set_major_locator(FixedLocator([t for t in ticks if lo <= t <= hi]))
            a.xaxis.set_major_formatter(ScalarFormatter())
            a.xaxis.set_minor_locator(NullLocator())
        for limit, text in ((32, "small | medium"), (96, "medium | large")):
            if bins[0] < limit < bins[-1]:
                ax.axvline(limit, color="black", ls="--", lw=1)
                ax.text(limit, ax.get_ylim()[1] * 0.95, f" {text}", fontsize=8, va="top")
    ax.set(
        title=f"box size ({len(size)} boxes)", xlabel="sqrt(width x height), pixels of the image file", ylabel="boxes"
    )
    ax2.set(title="box aspect ratio", xlabel="width / height", ylabel="boxes")
    fig.tight_layout()
    return save_figure(fig, path)


def show_dataset(dataset, out_dir: str | Path, *, count: int = 16, seed: Optional[int] = 0) -> Path:
    """Write ``samples.png`` (``count`` items: a random sample by ``seed``, or the first ones with
    ``seed=None``), ``classes.png``, ``box_sizes.png``, ``problems.txt`` and ``index.html`` into
    ``out_dir``; returns the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    boxes, labels = _annotations(dataset)
    n = min(count, len(dataset))
    indices = (
        sorted(np.random.default_rng(seed).choice(len(dataset), n, replace=False).tolist())
        if seed is not None
        else list(range(n))
    )
    save_samples(dataset, out / "samples.png", indices)
    plot_class_counts(dataset.class_names, labels, out / "classes.png")
    plot_box_sizes(boxes, out / "box_sizes.png")
    problems = [str(p) for p in getattr(dataset, "problems", [])]
    (out / "problems.txt").write_text("".join(p + "\n" for p in problems))
    c = len(dataset.class_names)
    per_class = np.bincount(np.concatenate(labels) if labels else np.zeros(0, np.int64), minlength=c)[:c]
    rows = [(swatch(class_color(k), name), int(per_class[k])) for k, name in enumerate(dataset.class_names)]
    listed = "".join(f"<li>{p}</li>" for p in _escape(problems[:SHOW_PROBLEMS]))
    more = (
        f"<p>... and {len(problems) - SHOW_PROBLEMS} more in problems.txt</p>" if len(problems) > SHOW_PROBLEMS else ""
    )
    sections = [
        (
            f"Problems the validator found ({len(problems)})",
            (
                "<p>These annotations/images are left out (<code>data.bad_annotations=skip</code>); all of "
                "them are in "
                f"problems.txt.</p><ul>{listed}</ul>{more}"
            )
            if problems
            else "<p>None.</p>",
        ),
        (f"{n} images with their ground truth", figure("samples.png", "sample images with ground-truth boxes")),
        (
            "Classes",
            table(["class", "boxes"], rows, raw_first=True) + figure("classes.png", "boxes and images per class"),
        ),
        (
            "Box sizes",
            figure(
                "box_sizes.png",
                "box size and aspect ratio histograms",
                "Crowd and ignored boxes are left out, as in training.",
            ),
        ),
    ]
    intro = (
        f"{len(dataset)} images, {sum(len(b) for b in boxes)} boxes, {c} classes"
        + (f"; annotations: {dataset.ann_file}" if getattr(dataset, "ann_file", None) else "")
        + "."
    )
    page = write_page(out / "index.html", "Dataset overview", sections, intro=intro)
    log.info("wrote %s", page)
    return page


def _escape(items):
    import html

    return [html.escape(s) for s in items]
