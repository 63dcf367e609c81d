"""What every runtime of the exported graph shares: its metadata and the pre-/post-processing in numpy.

Pre-processing is MMDetection's test pipeline (SPEC "Pre-processing"): RGB uint8 -> keep-ratio
resize to the test scale (``preprocess.rescale_size`` + OpenCV ``INTER_LINEAR``) -> normalise with
the RGB mean/std -> zero-pad bottom/right to a multiple of 32 and to the largest image of the
batch. After the graph runs, the boxes are divided by each image's per-axis scale factor. The
constants come from the ONNX file's ``metadata_props`` (``export.METADATA_KEYS``), so a file is
all a deployment needs. Only numpy and OpenCV are used here (the functions imported from
``data.resize``/``data.images`` are numpy/OpenCV/PIL code). A runtime (``runtime.OnnxDetector``,
``openvino.OpenVINODetector``) loads the graph and implements ``run_graph``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union, cast

import numpy as np

from ..data.images import read_image
from ..data.resize import padded_size, resize_for_test
from ..models.detector import resolve_score_thr

log = logging.getLogger(__name__)

REQUIRED_METADATA = ("class_names", "test_scale", "pixel_mean", "pixel_std", "size_divisor")


INPUTS, OUTPUTS = ("images", "image_sizes"), ("boxes", "scores", "labels")  # what ``export_onnx`` writes


class GraphError(ValueError):
    """An exported file cannot run here: not a graph of ``sparse-rcnn export``, or an input its fixed size
    cannot hold."""


def check_model_file(path: Union[str, Path]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise GraphError(f"ONNX model {str(path)!r} is a folder; pass the .onnx file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {str(path)!r} not found; create one with `sparse-rcnn export`")
    return path


def check_signature(path: Path, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Refuse a graph whose inputs / outputs are not those ``export_onnx`` writes (another model,
    even one that carries our metadata)."""
    if list(inputs) != list(INPUTS) or not set(OUTPUTS) <= set(outputs):
        raise GraphError(
            f"{path}: its inputs ({', '.join(inputs)}) and outputs ({', '.join(outputs)}) are not those of a "
            f"Sparse R-CNN graph ({', '.join(INPUTS)} -> {', '.join(OUTPUTS)}); export one with `sparse-rcnn export`"
        )


class GraphDetector:
    """An exported Sparse R-CNN graph with its pre- and post-processing; the ``models.detector.Detector``
    interface. Subclasses load the graph, call ``set_graph_info`` and implement ``run_graph``."""

    path: Path
    runtime = "graph"

    def set_graph_info(self, meta: Mapping[str, str], input_shape: Sequence[Optional[int]]) -> None:
        """``meta``: the file's metadata_props (JSON strings); ``input_shape``: the graph's
        ``images`` shape, None where a dimension is dynamic."""
        if len(input_shape) != 4:
            raise GraphError(f"{self.path}: its images input has {len(input_shape)} dimensions, not 4 (B, 3, H, W)")
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ValueError(
                f"{self.path}: no {', '.join(missing)} in its metadata; export it with `sparse-rcnn export`"
            )
        self.class_names: list[str] = json.loads(meta["class_names"])
        self.test_scale: tuple[int, int] = tuple(json.loads(meta["test_scale"]))
        self.mean = np.asarray(json.loads(meta["pixel_mean"]), dtype=np.float32)
        self.std = np.asarray(json.loads(meta["pixel_std"]), dtype=np.float32)
        self.size_divisor = int(json.loads(meta["size_divisor"]))
        self.model_name = json.loads(meta.get("model_name", '"sparse-rcnn"'))
        # chosen on an evaluation set and carried from the checkpoint at export; used by score_thr="auto"
        self.score_thresholds: Optional[dict] = (
            json.loads(meta["score_thresholds"]) if "score_thresholds" in meta else None
        )
        # what ``deploy.quantize_onnx`` did to an int8 graph (scope, calibration, measured AP drop)
        self.quantization: Optional[dict] = json.loads(meta["quantization"]) if "quantization" in meta else None
        if self.quantization is not None:
            log.info("%s: int8 graph, %s", self.path.name, _describe(self.quantization))
        # Fixed (int) or dynamic (None) batch, height and width of the graph's input.
        self.fixed_batch, self.fixed_height, self.fixed_width = (input_shape[0], input_shape[2], input_shape[3])

    def run_graph(self, images: np.ndarray, image_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, 3, Hp, Wp) float32 and (B, 2) int64 -> the graph's ``boxes`` (B, k, 4), ``scores``
        (B, k), ``labels`` (B, k)."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def batch(self, images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Resized (3, H_i, W_i) uint8 images (arrays, or CPU tensors) -> normalised zero-padded
        (B, 3, Hp, Wp) float32 and (B, 2) int64 (h, w). A graph exported with fixed sizes gets
        exactly its input shape."""
        images = [np.asarray(img) for img in images]
        hp, wp = padded_size([img.shape[1:] for img in images], self.size_divisor)
        if self.fixed_height is not None and self.fixed_width is not None:  # fixed sizes are both fixed
            if hp > self.fixed_height or wp > self.fixed_width:
                raise GraphError(
                    f"a resized image of {wp}x{hp} (w x h, padded) does not fit this graph's fixed input "
                    f"{self.fixed_width}x{self.fixed_height}; export it with `dynamic` shapes, or with a "
                    "`size` covering it"
                )
            hp, wp = self.fixed_height, self.fixed_width
        out = np.zeros((len(images), 3, hp, wp), dtype=np.float32)
        for i, img in enumerate(images):
            out[i, :, : img.shape[1], : img.shape[2]] = (img.astype(np.float32) - self.mean[:, None, None]) / self.std[
                :, None, None
            ]
        sizes = np.asarray([img.shape[1:] for img in images], dtype=np.int64)
        return out, sizes

    def detect_resized(
        self, images: Sequence[Any], scale_factors: Sequence[tuple[float, float]], *, independent: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """(3, H, W) uint8 images already resized to the test scale, each with its (sx, sy) -> per
        image ``boxes`` (k, 4) xyxy in original pixels, ``scores`` (k,) sorted high to low,
        ``labels`` (k,). The ``models.detector.Detector`` interface. ``independent``: one graph call
        per image (the graph is one piece; its kernels may round a batch differently from batch 1),
        so each answer is bit-identical to the image's alone."""
        results: list[dict[str, np.ndarray]] = []
        step = self.fixed_batch or (1 if independent else len(images))
        for start in range(0, len(images), step):
            chunk = list(images[start : start + step])
            n = len(chunk)
            if self.fixed_batch is not None and n < self.fixed_batch:  # fill a fixed batch with copies
                chunk += [chunk[-1]] * (self.fixed_batch - n)
            boxes, scores, labels = self.run_graph(*self.batch(chunk))
            for i in range(n):
                sx, sy = scale_factors[start + i]
                factor = np.asarray([sx, sy, sx, sy], dtype=np.float32)
                results.append({"boxes": boxes[i] / factor, "scores": scores[i], "labels": labels[i]})
        return results

    def __call__(
        self,
        inputs: Union[str, Path, np.ndarray, Sequence[Any]],
        *,
        batch_size: int = 1,
        score_thr: Union[float, str] = 0.0,
    ):
        """Detect objects in file paths or (H, W, 3) RGB uint8 arrays; one input or a list.

        Returns per input a dict of numpy arrays ``boxes`` (k, 4) in its pixels, ``scores``,
        ``labels``, plus ``categories`` (class names), each the input's answer alone whatever
        ``batch_size`` (a graph exported with a fixed batch runs as exported). ``score_thr="auto"``:
        the per-class thresholds in the file's metadata (``score_thresholds``).
        """
        thr = np.asarray(resolve_score_thr(self, score_thr), dtype=np.float64)
        single = isinstance(inputs, (str, Path, np.ndarray))
        items = [inputs] if single else list(cast(Sequence[Any], inputs))
        results = []
        for start in range(0, len(items), batch_size):
            arrays = [
                read_image(x) if isinstance(x, (str, Path)) else _check_array(x)
                for x in items[start : start + batch_size]
            ]
            resized, factors = zip(*(resize_for_test(a, self.test_scale) for a in arrays))
            for det in self.detect_resized([img.transpose(2, 0, 1) for img in resized], factors, independent=True):
                keep = det["scores"] >= (thr if thr.ndim == 0 else thr[det["labels"]])
                kept: dict[str, Any] = {k: v[keep] for k, v in det.items()}
                kept["categories"] = [self.class_names[i] for i in kept["labels"].tolist()]
                results.append(kept)
        return results[0] if single else results


def _describe(q: dict) -> str:
    """One line of an int8 graph's ``quantization`` metadata."""
    text = f"scope {q.get('scope')} ({q.get('kept_fp32')}), {q.get('calibration_images')} calibration images"
    if q.get("metric_drop") is not None:
        text += f", {q.get('metric')} {q.get('int8_metric')} vs fp32 {q.get('fp32_metric')} (drop {q['metric_drop']})"
    return text + f", {q.get('tool')}"


def _check_array(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != 3 or x.dtype != np.uint8:
        desc = f"array of shape {x.shape} and dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"expected a path or an (H, W, 3) RGB uint8 array, got {desc}")
    return x
