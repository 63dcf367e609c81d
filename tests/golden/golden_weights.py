"""Deterministic weights of the golden tiny Sparse R-CNN, from its key list alone (numpy only).

``tools/make_golden.py`` (MMDetection's venv) and ``tests/test_parity.py`` (ours) both call
``generate_state(spec, seed)`` on the same ``spec`` (MMDetection state_dict keys, shapes, dtypes,
stored in ``golden.json``), so the 11 M weights never need to be stored. numpy's legacy
``RandomState`` stream is frozen across numpy versions, values are drawn in float64 in sorted-key
order and cast to float32, so both sides get the same bits (``weights_sha256`` checks it).

Rules, chosen so that activations stay in a healthy range and RoIs hit every FPN level:

* conv / linear / attention weights: U(-a, a), a = sqrt(3 / fan_in) (variance 1 / fan_in, so
  the random-statistics ResNet does not blow up); ``fc_reg`` weight x 0.1 and bias
  ~ N(0, 0.02) so the boxes move but stay sane over 6 stages; ``fc_cls`` bias ~ -log(99) + N(0, 0.5);
* BatchNorm: weight ~ U(0.8, 1.2), bias ~ N(0, 0.05), running_mean ~ N(0, 0.1), running_var ~
  U(0.5, 1.5), num_batches_tracked 0; LayerNorm: weight ~ 1 + N(0, 0.1), bias ~ N(0, 0.05);
  any other bias ~ N(0, 0.05);
* proposals (normalised cx, cy, w, h): the first 4 rows are the whole image (0.5, 0.5, 1, 1), the
  others cx, cy ~ U(0.3, 0.7), w, h = exp(U(log 0.03, 0)) (log-uniform, so that the 16 RoIs fall on
  all four FPN levels); proposal features ~ N(0, 1).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

WHOLE_IMAGE_ROWS = 4


def _weight(rng: np.random.RandomState, module: str, shape: tuple[int, ...]) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    a = math.sqrt(3.0 / fan_in)
    w = rng.uniform(-a, a, size=shape)
    return w * 0.1 if module.endswith("fc_reg") else w


def _bias(rng: np.random.RandomState, module: str, shape: tuple[int, ...]) -> np.ndarray:
    if module.endswith("fc_cls"):
        return -math.log(99.0) + rng.normal(0.0, 0.5, size=shape)
    if module.endswith("fc_reg"):
        return rng.normal(0.0, 0.02, size=shape)
    return rng.normal(0.0, 0.05, size=shape)


def _proposals(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    n = shape[0]
    cxcy = rng.uniform(0.3, 0.7, size=(n, 2))
    wh = np.exp(rng.uniform(math.log(0.03), 0.0, size=(n, 2)))
    out = np.concatenate([cxcy, wh], axis=1)
    out[:WHOLE_IMAGE_ROWS] = (0.5, 0.5, 1.0, 1.0)
    return out


def _draw(rng: np.random.RandomState, key: str, shape: tuple[int, ...], keys: set[str]) -> np.ndarray:
    module, _, leaf = key.rpartition(".")
    is_bn = f"{module}.running_mean" in keys
    if leaf == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    if leaf == "running_mean":
        return rng.normal(0.0, 0.1, size=shape)
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, size=shape)
    if key == "rpn_head.init_proposal_bboxes.weight":
        return _proposals(rng, shape)
    if key == "rpn_head.init_proposal_features.weight":
        return rng.normal(0.0, 1.0, size=shape)
    if leaf.endswith("weight") and len(shape) >= 2:
        return _weight(rng, module, shape)
    if leaf == "weight":  # 1-d: a normalisation layer's scale
        return rng.uniform(0.8, 1.2, size=shape) if is_bn else 1.0 + rng.normal(0.0, 0.1, size=shape)
    if leaf.endswith("bias"):
        return _bias(rng, module, shape)
    raise ValueError(f"no generation rule for {key} {shape}")


def generate_state(spec: list, seed: int) -> dict[str, np.ndarray]:
    """spec: [(mmdet key, shape, dtype name)] -> {key: float32 / int64 array}, drawn in sorted order."""
    rng = np.random.RandomState(seed)
    keys = {k for k, _, _ in spec}
    state = {}
    for key, shape, dtype in sorted(spec, key=lambda s: s[0]):
        value = _draw(rng, key, tuple(shape), keys)
        state[key] = np.array(value, dtype=np.dtype(dtype), order="C")  # keeps 0-d shapes
    return state


def state_sha256(state: dict[str, np.ndarray]) -> str:
    """Hash of the keys and raw bytes, in sorted-key order (proves both sides made the same bits)."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(np.ascontiguousarray(state[key]).tobytes())
    return h.hexdigest()
