"""A generated shapes dataset in COCO format: the built-in demo's data, made in seconds.

Small RGB images on textured, noisy backgrounds hold 1-5 filled shapes (ellipse, rectangle,
triangle, cross; ``SyntheticSpec.classes`` picks others, e.g. a star, for a second dataset whose
classes partly differ) of random size, aspect, rotation and colour. Later shapes may overlap earlier
ones; each annotation is the box of the *visible* pixels, and a placement that would hide more than
half of any shape is redrawn. The layout on disk is what ``sparse_rcnn.data.CocoDetection`` reads::

    <root>/train/000000.png ...   <root>/val/000000.png ...
    <root>/annotations/train.json <root>/annotations/val.json
    <root>/synthetic.json         (marker: generator version + parameters)

Every image comes from its own ``numpy`` generator seeded with (seed, split, index), so the same
parameters give byte-identical files. ``generate`` reuses a root whose marker matches.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

VERSION = 1
CLASSES = ("ellipse", "rectangle", "triangle", "cross")  # the demo's, in label order
SHAPES = (*CLASSES, "star")  # every shape the generator can draw
_MARKER = "synthetic.json"
_SPLITS = {"train": 0, "val": 1}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate; all of it is recorded in the marker file."""

    num_train: int = 2000
    num_val: int = 200
    image_size: int = 96
    min_objects: int = 1
    max_objects: int = 5
    min_size: int = 12  # longest side of a shape before rotation, pixels
    max_size: int = 44
    min_visible: float = 0.5  # fraction of a shape that must stay visible
    seed: int = 0
    classes: tuple[str, ...] = CLASSES  # names from SHAPES, in label order


@dataclass(frozen=True)
class SyntheticDataset:
    """Paths of a generated dataset (the values a ``DataConfig`` needs)."""

    root: Path
    train_ann: Path
    train_images: Path
    val_ann: Path
    val_images: Path
    class_names: tuple[str, ...] = CLASSES


def dataset_paths(root: str | Path, classes: tuple[str, ...] = CLASSES) -> SyntheticDataset:
    root = Path(root)
    return SyntheticDataset(
        root=root,
        train_ann=root / "annotations" / "train.json",
        train_images=root / "train",
        val_ann=root / "annotations" / "val.json",
        val_images=root / "val",
        class_names=tuple(classes),
    )


def generate(root: str | Path, spec: SyntheticSpec = SyntheticSpec()) -> SyntheticDataset:
    """Write the dataset under ``root`` (or reuse it when its marker matches ``spec``)."""
    unknown = [c for c in spec.classes if c not in SHAPES]
    if unknown or not spec.classes or len(set(spec.classes)) != len(spec.classes):
        raise ValueError(f"classes {spec.classes!r}: expected distinct names from {', '.join(SHAPES)}")
    paths = dataset_paths(root, spec.classes)
    marker = paths.root / _MARKER
    wanted = {"version": VERSION, **asdict(spec)}
    if spec.classes == CLASSES:  # the demo's marker (and files) stay as before classes existed
        del wanted["classes"]
    else:
        wanted["classes"] = list(spec.classes)  # as JSON reads it back
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted:
                log.info("reusing the synthetic dataset in %s", paths.root)
                return paths
        except json.JSONDecodeError:
            pass
        log.info("synthetic dataset in %s has other parameters; regenerating", paths.root)
        marker.unlink()
        for d in (paths.train_images, paths.val_images, paths.root / "annotations"):
            shutil.rmtree(d, ignore_errors=True)
    (paths.root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count, image_dir, ann in (
        ("train", spec.num_train, paths.train_images, paths.train_ann),
        ("val", spec.num_val, paths.val_images, paths.val_ann),
    ):
        image_dir.mkdir(parents=True, exist_ok=True)
        coco = _coco_header(split, spec.classes)
        for i in range(count):
            rng = np.random.default_rng([spec.seed, _SPLITS[split], i])
            pixels, objects = render_image(rng, spec)
            name = f"{i:06d}.png"
            Image.fromarray(pixels).save(image_dir / name, compress_level=1)
            coco["images"].append({"id": i + 1, "file_name": name, "width": spec.image_size, "height": spec.image_size})
            for label, box, area in objects:
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": i + 1,
                        "category_id": label + 1,
                        "bbox": box,
                        "area": area,
                        "iscrowd": 0,
                    }
                )
        tmp = ann.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(coco))
        tmp.replace(ann)
    marker.write_text(json.dumps(wanted, indent=1))  # last: its presence means the data is complete
    log.info("generated %d + %d synthetic images in %s", spec.num_train, spec.num_val, paths.root)
    return paths


def _coco_header(split: str, classes: tuple[str, ...]) -> dict:
    return {
        "info": {"description": f"sparse-rcnn synthetic shapes v{VERSION}, {split}"},
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(classes)],
        "images": [],
        "annotations": [],
    }


def render_image(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, list]:
    """One (S, S, 3) uint8 image and its objects ``[(label, [x, y, w, h] visible box, area)]``."""
    s = spec.image_size
    image = _background(rng, s)
    owner = np.full((s, s), -1, dtype=np.int16)  # which shape each pixel shows
    shapes: list[tuple[int, int]] = []  # (label, full area)
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        for _attempt in range(10):
            label = int(rng.integers(len(spec.classes)))
            mask = _shape_mask(rng, spec.classes[label], s, spec.min_size, spec.max_size)
            area = int(mask.sum())
            if area < 16:
                continue
            trial = np.where(mask, len(shapes), owner)
            visible = np.bincount(trial[trial >= 0].ravel(), minlength=len(shapes) + 1)
            if all(visible[k] >= spec.min_visible * a for k, (_, a) in enumerate(shapes + [(label, area)])):
                image[mask] = _paint(rng, image[mask])
                owner = trial.astype(np.int16)
                shapes.append((label, area))
                break
    objects = []
    for k, (label, _) in enumerate(shapes):
        ys, xs = np.nonzero(owner == k)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        objects.append((label, [x0, y0, x1 - x0, y1 - y0], int(len(xs))))
    return image, objects


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    """Low-frequency colour blotches + pixel noise, mostly unsaturated."""
    grid = int(rng.integers(2, 7))
    base = rng.uniform(40, 200) + rng.normal(0, 25, size=(grid, grid, 3))
    coarse = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((s, s), Image.Resampling.BILINEAR)
    noise = rng.normal(0, rng.uniform(3, 14), size=(s, s, 1))
    return np.clip(np.asarray(coarse, dtype=np.float32) + noise, 0, 255).astype(np.uint8)


def _paint(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """Colours for the (P, 3) pixels of a shape: one saturated colour plus a little noise."""
    color = rng.uniform(0, 255, size=3)
    color[rng.integers(3)] = rng.choice([rng.uniform(0, 40), rng.uniform(215, 255)])  # keep it vivid
    noise = rng.normal(0, 6, size=(len(under), 1))
    return np.clip(color + noise, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, name: str, s: int, min_size: int, max_size: int) -> np.ndarray:
    """A (s, s) bool mask of one shape ``name`` (of SHAPES) at a random place, size and rotation."""
    size = rng.uniform(min_size, max_size)
    aspect = math.exp(rng.uniform(-0.6, 0.6))
    w, h = size * min(1.0, aspect), size * min(1.0, 1 / aspect)
    cx, cy = rng.uniform(0.1 * s, 0.9 * s), rng.uniform(0.1 * s, 0.9 * s)
    canvas = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(canvas)
    if name == "ellipse":
        draw.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=1)
        return np.asarray(canvas, dtype=bool)
    if name == "rectangle":
        pts = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    elif name == "triangle":
        pts = [(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    elif name == "cross":  # two bars of a third of the width
        t = 1 / 6
        pts = [
            (-t, -0.5),
            (t, -0.5),
            (t, -t),
            (0.5, -t),
            (0.5, t),
            (t, t),
            (t, 0.5),
            (-t, 0.5),
            (-t, t),
            (-0.5, t),
            (-0.5, -t),
            (-t, -t),
        ]
    else:  # star: five points, inner radius 0.4 of the outer
        pts = [
            (r * math.sin(k * math.pi / 5), -r * math.cos(k * math.pi / 5))
            for k in range(10)
            for r in [0.5 if k % 2 == 0 else 0.2]
        ]
    angle = rng.uniform(-math.pi / 6, math.pi / 6)
    c, sn = math.cos(angle), math.sin(angle)
    poly = [(cx + (x * w) * c - (y * h) * sn, cy + (x * w) * sn + (y * h) * c) for x, y in pts]
    draw.polygon(poly, fill=1)
    return np.asarray(canvas, dtype=bool)
