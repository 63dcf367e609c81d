"""Time MMDetection 3.3's own Sparse R-CNN on the same synthetic workload as `sparse-rcnn benchmark`.

Runs ONLY in the oracle venv (``~/.cache/sparse-rcnn-oracle/venv/bin/python``); it is a development
tool and never imported by the package. The model is built exactly as
``../shared/mmdet-reference/make_reference.py``'s ``benchmark()`` does (mmdet's own config, the
reference ``ckpt.pth``), and timed with ``model.test_step`` (inference, ``no_grad``) or
``model.train_step`` (forward, backward, grad clip, AdamW step). The inputs are the ones
``sparse_rcnn.engine.benchmark`` makes: uint8 images of the given size from ``torch.Generator`` seed 0 and
three fixed GT boxes per image, so both sides time the same work.

    $ORACLE/venv/bin/python benchmarks/mmdet_bench.py [--train] [--size 800x1333] [--batch-size 1]
        [--iters 5] [--threads 2] [--config sparse_rcnn_r50_fpn_1x_coco] [--output out.json]
        [--device cuda] [--tf32] [--fp16]   (GPU: TF32 matmuls/convs, fp16 autocast; benchmarks/gpu.py)

Prints one JSON object with the same keys as ``sparse-rcnn benchmark``.
"""

import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch

ORACLE_DIR = os.environ.get("ORACLE_DIR", osp.expanduser("~/.cache/sparse-rcnn-oracle"))
REFERENCE_TOOLS = os.environ.get(
    "MMDET_REFERENCE", osp.join(osp.dirname(osp.abspath(__file__)), "..", "..", "shared", "mmdet-reference")
)


def synthetic_batch(batch_size, h, w):
    """Same tensors as sparse_rcnn.engine.benchmark.synthetic_inputs (kept in sync by hand)."""
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(batch_size)]
    rel = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6], [0.3, 0.55, 0.7, 0.95]])
    boxes = rel * torch.tensor([w, h, w, h], dtype=torch.float32)
    labels = torch.tensor([0, 17, 56])
    return images, boxes, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="sparse_rcnn_r50_fpn_1x_coco")
    ap.add_argument("--size", default="800x1333", help="HxW")
    ap.add_argument("--batch-size", type=int, default=None, help="default 1, or 2 with --train")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA")
    ap.add_argument("--fp16", action="store_true", help="fp16 autocast (CUDA)")
    ap.add_argument("--output")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True

    sys.path.insert(0, REFERENCE_TOOLS)
    import make_reference as ref  # mmdet's config loading and model building
    from mmdet.structures import DetDataSample
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import load_checkpoint
    from mmengine.structures import InstanceData

    torch.set_num_threads(args.threads)
    init_default_scope("mmdet")
    h, w = (int(v) for v in args.size.lower().split("x"))
    batch_size = args.batch_size or (2 if args.train else 1)
    cfg = ref.load_cfg(ref.CONFIGS[args.config])
    model = ref.build_model(cfg)
    load_checkpoint(model, osp.join(ORACLE_DIR, "ref", args.config, "ckpt.pth"), map_location="cpu", strict=True)
    model = model.to(device)  # the data preprocessor moves the inputs to the model's device
    images, boxes, labels = synthetic_batch(batch_size, h, w)
    samples = []
    for i in range(batch_size):
        ds = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), img_id=i))
        ds.gt_instances = InstanceData(bboxes=boxes.clone(), labels=labels.clone())
        samples.append(ds)
    data = dict(inputs=images, data_samples=samples)

    autocast = lambda: torch.autocast(device.type, dtype=torch.float16, enabled=args.fp16)  # noqa: E731
    times = []
    if args.train:
        model.train()
        optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))

        def step():
            with autocast():
                model.train_step(copy.deepcopy(data), optim_wrapper)
    else:
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                model.test_step(copy.deepcopy(data))

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)  # noqa: E731
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for k in range(args.warmup + args.iters):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if k >= args.warmup:
            times.append(time.perf_counter() - t0)
    times_ms = sorted(t * 1e3 for t in times)
    med = statistics.median(times_ms)
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:
        peak = None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    out = {
        "impl": "mmdet " + __import__("mmdet").__version__,
        "model": args.config,
        "mode": "train" if args.train else "inference",
        "images_per_s": batch_size / (med / 1e3),
        "latency_ms_median": med,
        "latency_ms_p90": times_ms[min(len(times_ms) - 1, int(round(0.9 * (len(times_ms) - 1))))],
        "latency_ms_all": times_ms,
        "peak_mem_mb": peak,
        "device": "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": "fp16" if args.fp16 else "fp32",
        "tf32": args.tf32 if device.type == "cuda" else None,
        "batch_size": batch_size,
        "size": [h, w],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
    }
    text = json.dumps(out)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
