"""Data: reading images and COCO-format datasets, validation, training transforms, batching."""

from .build import build_datasets
from .coco import CocoDetection, collate
from .images import IMAGE_EXTENSIONS, MAX_PIXELS, ImageError, expand_image_paths, read_image, to_image_tensor
from .resize import resize_for_test
from .synthetic import SyntheticSpec
from .synthetic import generate as generate_shapes
from .validation import AnnotationProblem, DataError

__all__ = [
    "build_datasets", "CocoDetection", "collate", "DataError", "AnnotationProblem", "ImageError", "read_image",
    "to_image_tensor", "expand_image_paths", "IMAGE_EXTENSIONS", "MAX_PIXELS", "resize_for_test",
    "SyntheticSpec", "generate_shapes",
]
