"""One split of a dataset read into COCO form, whatever its format (``sources`` reads COCO, ``yolo``
and ``voc`` the others into it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .validation import AnnotationProblem

YOLO_FILES = ("data.yaml", "dataset.yaml", "data.yml")  # looked for in a folder given as a YOLO dataset


@dataclass
class DatasetSplit:
    """One split of a dataset, read into COCO form (not yet validated: see ``check_split``).

    ``locations``: ``("ann", id)`` or ``("image", id)`` -> (file, where) of the entry in the
    user's files, for messages. ``reload``: reads the split again (a training dataset does not keep
    the dict; its ``coco`` index is rebuilt on demand).
    """

    dataset: dict
    image_dir: Path
    source: str
    format: str
    problems: list[AnnotationProblem] = field(default_factory=list)
    locations: dict = field(default_factory=dict)
    reload: Optional[Callable[[], "DatasetSplit"]] = None
