"""Where the images of a prediction run come from, decoded and resized to the test scale before the
detector sees them: image files (``ImageFiles``), a dataset of original images (``DatasetImages``,
what evaluation reads), or any iterable of images (``ImageStream``, e.g. video frames).

Each yields ``Item``s. Files and datasets are map-style, so ``DataLoader`` workers decode them in
parallel and a torchrun process can take its share; a stream is read in order, in this process.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Sequence, cast

import numpy as np
import torch
from torch import Tensor

from ..data.images import ImageError, to_image_tensor
from ..data.resize import resize_for_test


@dataclass
class Item:
    """One input: its position ``index`` in the run, its ``key`` (a path, an image id, a frame
    number), the decoded ``original`` (3, H, W) uint8 and its ``resized`` copy with the per-axis
    ``factor`` (new_w / w, new_h / h), or the ``error`` that stopped it."""

    index: int
    key: Any
    original: Optional[Tensor] = None
    resized: Optional[Tensor] = None
    factor: Optional[tuple[float, float]] = None
    error: Optional[str] = None


def prepare(index: int, key: Any, image: Any, test_scale: Optional[tuple[int, int]]) -> Item:
    """An ``Item`` from anything ``data.to_image_tensor`` reads (a path, PIL image, array, tensor);
    an image that cannot be read becomes an item with its ``error``, prefixed with a path key.
    ``test_scale=None``: not resized (``resized`` is the original, ``factor`` (1, 1))."""
    try:
        original = to_image_tensor(image)
    except ImageError as e:
        message = str(e)
        if isinstance(key, str) and not message.startswith(key):
            message = f"{key}: {message}"
        return Item(index, key, error=message)
    if test_scale is None:  # a detector over originals (``TiledDetector``, ``TTADetector``) resizes itself
        return Item(index, key, original, original, (1.0, 1.0))
    resized, factor = resize_for_test(original, test_scale)
    return Item(index, key, original, resized, factor)


class ImageFiles(torch.utils.data.Dataset):
    """Image files; item i is ``prepare(i, path, path)``."""

    def __init__(self, paths: Sequence[str], test_scale: Optional[tuple[int, int]]) -> None:
        # One numpy bytes array, not a list of str: forked workers reading a list touch each
        # object's refcount and so copy its memory page by page (RSS grows with every image).
        self.paths = np.array([os.fsencode(p) for p in paths], dtype=bytes)
        self.test_scale = tuple(test_scale) if test_scale is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        path = os.fsdecode(self.paths[i])
        return prepare(i, path, path, cast("tuple[int, int]", self.test_scale))


class DatasetImages(torch.utils.data.Dataset):
    """A dataset of ``(original image, target)`` pairs (``data.CocoDetection`` built with
    ``train=False``); an item's key is ``target["image_id"]``."""

    def __init__(self, dataset: Any, test_scale: Optional[tuple[int, int]]) -> None:
        self.dataset, self.test_scale = dataset, tuple(test_scale) if test_scale is not None else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Item:
        image, target = self.dataset[i]
        return prepare(i, target["image_id"], image, cast("tuple[int, int]", self.test_scale))


class ImageStream(torch.utils.data.IterableDataset):
    """Any iterable of ``(key, image)`` pairs, prepared in order as they come (video frames). An
    image that is an ``Item`` already (``prepare``d elsewhere, e.g. in a video's decoding thread)
    is taken as it is, with the stream's index and key."""

    def __init__(self, pairs: Iterable[tuple[Any, Any]], test_scale: Optional[tuple[int, int]]) -> None:
        self.pairs, self.test_scale = pairs, tuple(test_scale) if test_scale is not None else None

    def __iter__(self) -> Iterator[Item]:
        for index, (key, image) in enumerate(self.pairs):
            if isinstance(image, Item):
                yield dataclasses.replace(image, index=index, key=key)
            else:
                yield prepare(index, key, image, cast("tuple[int, int]", self.test_scale))
