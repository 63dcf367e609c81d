"""Data: reading images and datasets (COCO, YOLO, Pascal VOC), validation, conversion, training
transforms, batching."""

from .build import build_datasets
from .coco import CocoDetection, collate
from .convert import convert_dataset
from .images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageError,
    ImageTooLargeError,
    decode_image,
    expand_image_paths,
    read_image,
    to_image_tensor,
)
from .resize import resize_for_test
from .sources import FORMATS, default_coco_images, detect_format, load_split
from .split import DatasetSplit
from .synthetic import SyntheticSpec
from .synthetic import generate as generate_shapes
from .synthetic_clips import ClipObject, ClipSpec, render_clip
from .validation import AnnotationProblem, DataError

__all__ = [
    "ClipSpec",
    "ClipObject",
    "render_clip",
    "build_datasets",
    "CocoDetection",
    "collate",
    "DataError",
    "AnnotationProblem",
    "ImageError",
    "ImageTooLargeError",
    "decode_image",
    "read_image",
    "to_image_tensor",
    "expand_image_paths",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "resize_for_test",
    "SyntheticSpec",
    "generate_shapes",
    "FORMATS",
    "DatasetSplit",
    "load_split",
    "detect_format",
    "default_coco_images",
    "convert_dataset",
]
