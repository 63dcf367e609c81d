"""The published model zoo: MMDetection's Sparse R-CNN checkpoints and their COCO val box AP."""

from __future__ import annotations

from dataclasses import dataclass

_BASE = "https://download.openmmlab.com/mmdetection/v2.0/sparse_rcnn"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    box_ap: float
    file: str

    @property
    def url(self) -> str:
        return f"{_BASE}/{self.name}/{self.file}"


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("sparse_rcnn_r50_fpn_1x_coco", 37.9, "sparse_rcnn_r50_fpn_1x_coco_20201222_214453-dc79b137.pth"),
        ZooEntry(
            "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco", 42.8,
            "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco_20201218_154234-7bc5c054.pth",
        ),
        ZooEntry(
            "sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco", 45.0,
            "sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco_20201223_024605-9fe92701.pth",
        ),
        ZooEntry(
            "sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco", 44.2,
            "sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco_20201223_121552-6c46c9d6.pth",
        ),
        ZooEntry(
            "sparse_rcnn_r101_fpn_300_proposals_crop_mstrain_480-800_3x_coco", 46.2,
            "sparse_rcnn_r101_fpn_300_proposals_crop_mstrain_480-800_3x_coco_20201223_023452-c23c3564.pth",
        ),
    ]
}
