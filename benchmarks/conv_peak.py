"""What one convolution reaches on this CPU: the practical fp32, bf16 and int8 ceilings, and Winograd.

Times single convolutions with the shapes that dominate an R-50 + FPN forward at 800x1333 (the
FPN's 3x3 on P2 and P3, a 1x1 lateral, ResNet 3x3s of layer1, layer3 and layer4), batch 1 by
default: oneDNN (PyTorch's CPU convolution) in fp32 and bf16, NCHW and channels_last, and NNPACK
in fp32 NCHW (its Winograd kernel for a 3x3 at batch 1, as ``sparse_rcnn.ops.winograd`` uses it),
and PyTorch's int8 convolution (``int8-cl``: uint8 x int8, the arithmetic of ``sparse-rcnn quantize``).
Prints the median time, GFLOP/s of the direct method (2 * MACs / time) and the relative L2 error
of the output against a float64 convolution. A whole forward of direct convolutions cannot beat
these rates; dividing the forward's FLOP count (``profile_breakdown.py``) by them gives its floor.

    python benchmarks/conv_peak.py [--threads 2] [--iters 5] [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from sparse_rcnn.ops import keep_freed_memory
from sparse_rcnn.ops.winograd import nnpack_available

# (in channels, out channels, kernel, height, width)
SHAPES = (
    (256, 256, 3, 200, 336),
    (256, 256, 3, 100, 168),
    (256, 256, 1, 200, 336),
    (64, 64, 3, 200, 336),
    (256, 256, 3, 50, 84),
    (512, 512, 3, 50, 84),
    (512, 512, 3, 25, 42),
)


def median_ms(fn, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


@torch.no_grad()
def measure(cin: int, cout: int, k: int, h: int, w: int, iters: int, batch: int = 1):
    """Yields one result dict per implementation for this shape."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, h, w, generator=g)
    weight = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
    bias = torch.randn(cout, generator=g)
    exact = F.conv2d(x.double(), weight.double(), bias.double(), padding=k // 2)
    macs = batch * cin * cout * k * k * h * w
    runs = {}
    for dtype in (torch.float32, torch.bfloat16):
        for cl in (False, True):
            fmt = torch.channels_last if cl else torch.contiguous_format
            xi, wi = x.to(dtype).contiguous(memory_format=fmt), weight.to(dtype).contiguous(memory_format=fmt)
            name = f"onednn-{str(dtype).split('.')[1]}{'-cl' if cl else ''}"
            bi = bias.to(dtype)
            runs[name] = lambda xi=xi, wi=wi, bi=bi: F.conv2d(xi, wi, bi, padding=k // 2)
    runs["int8-cl"] = _int8_conv(x, weight, bias, k)
    if nnpack_available():
        runs["nnpack-float32"] = (  # Winograd only for a 3x3 at batch 1
            lambda: torch._nnpack_spatial_convolution(x, weight, bias, [k // 2] * 2)
        )
    for name, fn in runs.items():
        ms = median_ms(fn, iters)
        out = fn().double()
        err = float((out - exact).norm() / exact.norm())
        yield {
            "shape": [cin, cout, k, h, w],
            "batch": batch,
            "impl": name,
            "ms": round(ms, 1),
            "gflop_per_s": round(2 * macs / ms / 1e6, 1),
            "rel_err": float(f"{err:.2e}"),
        }


def _int8_conv(x, weight, bias, k: int):
    """PyTorch's quantized convolution (the ``x86`` engine: oneDNN/FBGEMM int8 kernels, VNNI where the
    CPU has it) in channels_last: uint8 activations (per tensor), int8 weights (per output channel), as
    an int8 graph of ``sparse-rcnn quantize`` computes; returns a function giving the fp32 output."""
    torch.backends.quantized.engine = "x86"
    w_scale = weight.abs().amax(dim=(1, 2, 3)) / 127
    qw = torch.quantize_per_channel(weight, w_scale, torch.zeros_like(w_scale, dtype=torch.long), 0, torch.qint8)
    qx = torch.quantize_per_tensor(x, float(x.abs().max()) / 127, 128, torch.quint8)
    qx = qx.contiguous(memory_format=torch.channels_last)
    conv = torch.ao.nn.quantized.Conv2d(weight.shape[1], weight.shape[0], k, padding=k // 2)
    conv.set_weight_bias(qw, bias)
    out = F.conv2d(x, weight, bias, padding=k // 2)
    conv.scale, conv.zero_point = float(out.abs().max()) / 127, 128
    return lambda: conv(qx).dequantize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument(
        "--batch", type=int, default=1, help="images per convolution (NNPACK's batched path is not Winograd)"
    )
    args = ap.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    for shape in SHAPES:
        for result in measure(*shape, args.iters, args.batch):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
