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

# The zoo is trained on COCO: its 80 class names (label order) and their COCO category ids, used
# when writing COCO results.
COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
    35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)
