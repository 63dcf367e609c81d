"""Where ``--compile`` spends its time against eager: one R-50 800x1333 image, 2 threads, the
reference checkpoint; 3 timed calls after the first (which compiles), then a torch.profiler table
of one call. Run each mode in its own process, nothing else running:

    python benchmarks/compile_profile.py eager > benchmarks/results/compile_profile_eager.log
    python benchmarks/compile_profile.py compile > benchmarks/results/compile_profile_compiled.log
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from sparse_rcnn.engine import synthetic_inputs
from sparse_rcnn.models import load_model
from sparse_rcnn.ops import compile_detect, keep_freed_memory

ORACLE_DIR = os.environ.get("ORACLE_DIR", os.path.expanduser("~/.cache/sparse-rcnn-oracle"))
CONFIG = "sparse_rcnn_r50_fpn_1x_coco"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("eager", "compile"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    keep_freed_memory()  # as the sparse-rcnn command does
    torch.set_num_threads(args.threads)
    model = load_model(CONFIG, os.path.join(ORACLE_DIR, "ref", CONFIG, "ckpt.pth")).eval()
    if args.mode == "compile":
        compile_detect(model)
    images, _ = synthetic_inputs(1, (800, 1333))
    with torch.no_grad():
        model(images)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - t0)
        print(args.mode, "times", [round(t, 2) for t in times], flush=True)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(images)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=70))


if __name__ == "__main__":
    main()
