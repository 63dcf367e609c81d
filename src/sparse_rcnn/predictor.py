"""Prediction on user inputs: file paths, PIL images, numpy arrays or tensors, in batches.

Each input is turned into a (3, H, W) uint8 RGB tensor; the model resizes it to its test scale
and maps the detections back to the input's pixels. ``to_json`` writes the record format of
``sparse-rcnn predict``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .images import read_image, to_rgb_array


def to_image_tensor(x: Any) -> Tensor:
    """A path, PIL image, (H, W, 3) RGB array or (3, H, W) tensor -> (3, H, W) tensor.

    Arrays may also be (H, W) or (H, W, 1) grey or (H, W, 4) RGBA (alpha dropped, as for files).
    PIL images are used as given: apply ``PIL.ImageOps.exif_transpose`` first for EXIF rotation.
    """
    if isinstance(x, (str, Path)):
        x = read_image(x)
    if isinstance(x, Image.Image):
        x = to_rgb_array(x)
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim == 3 and x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        if x.ndim == 3 and x.shape[2] == 4:
            x = x[..., :3]
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB array, got shape {x.shape}")
        if x.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 (0-255) array, got {x.dtype}; for 0-1 floats pass "
                "(x * 255).round().astype(np.uint8), or a float (3, H, W) tensor"
            )
        x = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)
    if isinstance(x, Tensor):
        if x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[2] == 0:
            raise ValueError(f"empty image of shape {tuple(x.shape)}")
        return x
    raise TypeError(f"cannot use {type(x).__name__} as an image; pass a path, PIL image, array or tensor")


@torch.no_grad()
def predict(model, inputs: Any, *, batch_size: int = 1, score_thr: float = 0.0) -> list[dict[str, Any]]:
    """Run ``model`` (eval mode) on one input or a list of them. Returns per input a dict with
    ``boxes`` (k, 4) float tensor in its pixels, ``scores``, ``labels``, ``categories``."""
    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    was_training = model.training
    model.eval()
    results = []
    try:
        for start in range(0, len(items), batch_size):
            images = [to_image_tensor(x) for x in items[start : start + batch_size]]
            for out in model(images):
                keep = out["scores"] >= score_thr
                out = {k: v[keep].cpu() for k, v in out.items()}
                out["categories"] = [model.class_names[i] for i in out["labels"].tolist()]
                results.append(out)
    finally:
        model.train(was_training)
    return results[0] if single else results


def to_record(image: str, width: int, height: int, det: dict[str, Any], class_names: Sequence[str]) -> dict:
    """One entry of predict's output: boxes in image pixels, sorted by score."""
    order = torch.argsort(det["scores"], descending=True, stable=True)
    return {
        "image": image,
        "width": int(width),
        "height": int(height),
        "detections": [
            {
                "box": [float(v) for v in det["boxes"][i].tolist()],
                "score": float(det["scores"][i]),
                "label": int(det["labels"][i]),
                "category": class_names[int(det["labels"][i])],
            }
            for i in order.tolist()
        ],
    }


def iter_chunks(seq: Sequence, n: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class _ResizedImages(torch.utils.data.Dataset):
    """Decode and resize one image per item; a failure is returned, not raised."""

    def __init__(self, paths: Sequence[str], test_scale: tuple[int, int]) -> None:
        # One numpy bytes array, not a list of str: forked workers reading a list touch each
        # object's refcount and so copy its memory page by page (RSS grows with every image).
        self.paths = np.array([os.fsencode(p) for p in paths], dtype=bytes)
        self.test_scale = test_scale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from .images import ImageError
        from .preprocess import resize_for_test

        path = os.fsdecode(self.paths[i])
        try:
            original = to_image_tensor(path)
        except ImageError as e:
            return path, str(e)
        resized, factor = resize_for_test(original, self.test_scale)
        return path, (original, resized, factor)


class PredictionBatch:
    def __init__(self, items: list) -> None:
        ok = [(p, v) for p, v in items if not isinstance(v, str)]
        self.failures = [(p, v) for p, v in items if isinstance(v, str)]
        self.paths = [p for p, _ in ok]
        self.originals = [v[0] for _, v in ok]
        self.images = [v[1] for _, v in ok]
        self.scale_factors = [v[2] for _, v in ok]
        self.sizes = [tuple(v[0].shape[-2:]) for _, v in ok]


class PredictionLoader:
    """Batches of decoded, test-resized images from paths or folders, decoded in ``workers``
    background processes while the model runs; memory stays bounded by a few batches."""

    def __init__(self, inputs: Sequence[str], *, test_scale: tuple[int, int], batch_size: int = 1, workers: int = 0) -> None:
        from .images import expand_image_paths

        self.paths = expand_image_paths(inputs)
        self.num_ok = 0
        self.loader = torch.utils.data.DataLoader(
            _ResizedImages(self.paths, test_scale), batch_size=batch_size, num_workers=workers,
            collate_fn=PredictionBatch, prefetch_factor=2 if workers else None,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.num_ok += len(batch.paths)
            yield batch
