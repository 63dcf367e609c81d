"""Tiny COCO-format training data and a tiny-model YAML for the trainer tests (engine, resume, DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

LANDSCAPE, PORTRAIT = (90, 120), (120, 90)  # (h, w) of the files; train_scale (128, 96) maps them to 96x128 / 128x96


def make_coco(
    root: Path,
    sizes: list[tuple[int, int]],
    *,
    seed: int = 0,
    num_classes: int = 3,
    boxes_per_image: int = 0,
    name: str = "train",
) -> tuple[Path, Path]:
    """PNG images of noise with 1-3 (or ``boxes_per_image``) bright boxes each.

    Returns (annotation json, image folder)."""
    rng = np.random.default_rng(seed)
    img_dir = root / f"{name}_images"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, (h, w) in enumerate(sizes):
        pixels = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        for _ in range(boxes_per_image or int(rng.integers(1, 4))):
            bw, bh = int(rng.integers(16, w // 2)), int(rng.integers(16, h // 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            label = int(rng.integers(0, num_classes))
            pixels[y : y + bh, x : x + bw] = 135 + 40 * label
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": label + 1,
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        Image.fromarray(pixels).save(img_dir / f"{i:03d}.png")
        images.append({"id": i + 1, "file_name": f"{i:03d}.png", "width": w, "height": h})
    cats = [{"id": k + 1, "name": f"class{k}"} for k in range(num_classes)]
    ann = root / f"{name}.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann, img_dir


def tiny_config_dict(**train) -> dict:
    """The team's tiny model; training values as the tests need them."""
    return {
        "name": "tiny",
        "model": {
            "backbone": "resnet18",
            "pretrained_backbone": False,
            "frozen_stages": 4,
            "fpn_channels": 64,
            "num_proposals": 8,
            "num_stages": 2,
            "ffn_dim": 128,
            "dynamic_dim": 16,
            "num_heads": 4,
            "num_classes": 3,
            "test_scale": [128, 96],
        },
        "data": {"train_scale": [128, 96], "batch_size": 2, "workers": 0},
        "train": {
            "epochs": 2,
            "lr": 1e-4,
            "warmup_iters": 3,
            "log_interval": 1,
            "checkpoint_interval": 2,
            "keep_checkpoints": 3,
            "eval_interval": 0,
            **train,
        },
    }


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_command(cfg_yaml: Path, ann: Path, img_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sparse_rcnn.cli",
        "train",
        "--config",
        str(cfg_yaml),
        "--train-ann",
        str(ann),
        "--train-images",
        str(img_dir),
        "--output-dir",
        str(out),
        *extra,
    ]


def subprocess_env(**extra: str) -> dict:
    """Same thread count as this process, so that results are bit-identical to in-process runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARSE_RCNN_")}
    env.update({"OMP_NUM_THREADS": str(torch.get_num_threads()), **extra})
    return env


def run(cmd: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
