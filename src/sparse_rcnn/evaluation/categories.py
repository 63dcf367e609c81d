"""Which dataset category each model label is scored against: by class name, never by position.

A dataset's class list need not be the model's: a Pascal VOC split names only the classes its XML
files hold, a YOLO ``data.yaml`` may list the model's classes in another order or another case.
Every model class is matched to the dataset's category of the same name (exactly, else ignoring
case). A model class the dataset lacks becomes a category of its own without ground truth, so it
is scored as in a dataset that lists it (COCOeval: no AP, left out of the mean; its detections
are not counted against the others). A dataset category the model lacks is left out of scoring
when every model class is found (MMDetection evaluates the model's classes); otherwise the
dataset is for another model and is refused, naming those categories.
"""

from __future__ import annotations

import logging
from typing import Sequence

from ..data.validation import DataError

log = logging.getLogger(__name__)


def match_categories(class_names: Sequence[str], categories: Sequence[tuple[int, str]], source: str) -> list[int]:
    """COCO category id of each model label (``categories``: the dataset's (id, name) pairs).
    Model classes the dataset lacks get new ids above the dataset's (see ``add_categories``);
    raises ``DataError`` naming the dataset's categories the model lacks, unless every model class is found."""
    exact = {str(name): cat_id for cat_id, name in categories}
    folded: dict[str, int] = {}
    for cat_id, name in categories:
        folded.setdefault(str(name).casefold(), cat_id)
    found = {name: exact.get(name, folded.get(name.casefold())) for name in class_names}
    missing = [name for name, cat_id in found.items() if cat_id is None]
    used = set(found.values())
    lacking = [str(name) for cat_id, name in categories if cat_id not in used]
    if missing and lacking:
        model = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
        raise DataError(
            f"{source} has {len(categories)} categories but the model predicts {len(class_names)} classes, "
            f"and {_names(lacking)} {'is' if len(lacking) == 1 else 'are'} not among them ({model}); "
            "pick the matching `model`/`weights`"
        )
    if lacking:
        log.warning("%s: %s not a class of the model: not scored", source, _names(lacking))
    if missing:
        log.info("%s holds no %s of the model: scored without ground truth", source, _names(missing))
    next_id = max((cat_id for cat_id, _ in categories), default=0) + 1
    cat_ids: list[int] = []
    for name in class_names:
        chosen = found[name]
        if chosen is None:  # a class this dataset lacks: a category of its own, without ground truth
            chosen, next_id = next_id, next_id + 1
        cat_ids.append(chosen)
    return cat_ids


def add_categories(coco, cat_ids: Sequence[int], class_names: Sequence[str]) -> None:
    """Add to the pycocotools ``coco`` index the categories of ``cat_ids`` it lacks (the model
    classes ``match_categories`` found no category for), named after the model's classes."""
    for cat_id, name in zip(cat_ids, class_names):
        if cat_id not in coco.cats:
            cat = {"id": int(cat_id), "name": str(name)}
            coco.dataset.setdefault("categories", []).append(cat)
            coco.cats[int(cat_id)] = cat


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    return f"{'class' if len(names) == 1 else 'classes'} {shown}"
