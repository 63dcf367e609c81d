"""What one oneDNN convolution reaches on this CPU: the practical fp32 and bf16 ceilings.

Times single convolutions with the shapes that dominate an R-50 + FPN forward at 800x1333 (the
FPN's 3x3 on P2, a 1x1 lateral, a ResNet stage-1 3x3 and a stage-4 3x3), in fp32 and bf16, NCHW
and channels_last, and prints GFLOP/s (2 * MACs / median time). A whole forward cannot beat these
rates; dividing the forward's FLOP count (``profile_breakdown.py``) by them gives its floor.

    python benchmarks/conv_peak.py [--threads 2] [--iters 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from sparse_rcnn.allocator import keep_freed_memory

# (in channels, out channels, kernel, height, width)
SHAPES = ((256, 256, 3, 200, 336), (256, 256, 1, 200, 336), (64, 64, 3, 200, 336), (512, 512, 3, 50, 84))


@torch.no_grad()
def gflops(cin: int, cout: int, k: int, h: int, w: int, dtype: torch.dtype, channels_last: bool, iters: int) -> float:
    conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2).to(dtype)
    x = torch.randn(1, cin, h, w).to(dtype)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    conv(x)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        conv(x)
        times.append(time.perf_counter() - t0)
    return 2 * cin * cout * k * k * h * w / statistics.median(times) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            for cl in (False, True):
                rate = gflops(*shape, dtype, cl, args.iters)
                print(json.dumps({"shape": shape, "dtype": str(dtype).split(".")[1], "channels_last": cl,
                                  "gflop_per_s": round(rate, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
