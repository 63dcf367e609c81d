"""``sparse-rcnn serve``: the detector as an HTTP service (uvicorn), or N replicas on Ray Serve."""

from __future__ import annotations

import argparse
import functools
import logging
import os

from ..data import MAX_PIXELS
from ..serve import MISSING, MissingPackageError, ServeSettings, create_app, run_on_ray, serve_forever
from .args import (
    UsageError,
    add_fast_mode_args,
    add_model_args,
    add_runtime_args,
    detector_from_args,
    device_arg,
    positive_int,
)

log = logging.getLogger("sparse_rcnn")
API_KEY_ENV = "SPARSE_RCNN_API_KEY"


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the detector over HTTP (POST /v1/detect, a page at /, /metrics)")
    add_model_args(p)
    add_runtime_args(p)
    add_fast_mode_args(p)
    p.add_argument("--device", default="cpu", type=device_arg, help="cpu, cuda or cuda:N")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=positive_int, default=8, help="requests per batch (same padded shape only)")
    p.add_argument(
        "--shared-forward",
        action="store_true",
        help="one forward per batch: faster for small models and on GPUs, answers equal to batch 1 only up to float "
        "rounding (default: each image alone, bit-identical)",
    )
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill")
    p.add_argument("--max-queue", type=positive_int, default=64, help="requests waiting beyond which 503 answers")
    p.add_argument("--timeout", type=positive_float, default=30.0, help="seconds a request may take (else 504)")
    p.add_argument("--max-upload-mb", type=positive_float, default=20.0, help="largest upload (else 413)")
    p.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS, help="largest image (else 413)")
    p.add_argument("--api-key", help=f"require Authorization: Bearer KEY (default: ${API_KEY_ENV} if set)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN", help="allow this browser origin")
    p.add_argument("--drain-timeout", type=positive_float, default=30.0, help="seconds to finish requests on stop")
    p.add_argument("--ray", action="store_true", help="run on Ray Serve (pip install 'sparse-rcnn[ray]')")
    p.add_argument("--replicas", type=positive_int, default=1, help="Ray Serve replicas (with --ray)")
    p.add_argument("--address", help="an existing Ray cluster (auto, or ray://HEAD:10001); default: start one here")
    p.add_argument("--num-cpus", type=positive_int, help="CPUs of the local Ray instance (with --ray)")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    try:
        return ServeSettings(
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            shared_forward=args.shared_forward,
            max_queue=args.max_queue,
            timeout_s=args.timeout,
            max_upload_mb=args.max_upload_mb,
            max_pixels=args.max_pixels,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            cors_origins=tuple(args.cors_origin),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    if MISSING:  # before loading the model
        raise UsageError(f"{MISSING} is not installed: pip install 'sparse-rcnn[serve]'")
    settings = settings_from_args(args)
    if (args.replicas > 1 or args.address or args.num_cpus) and not args.ray:
        raise UsageError("--replicas, --address and --num-cpus go with --ray")
    try:
        if args.ray:
            load = functools.partial(detector_from_args, args)  # each replica loads its own copy
            log.info("Ray Serve: %d replica(s) on http://%s:%d/", args.replicas, args.host, args.port)
            run_on_ray(
                load,
                settings,
                replicas=args.replicas,
                address=args.address,
                host=args.host,
                port=args.port,
                num_cpus=args.num_cpus,
                blocking=True,
            )
            return 0
        app = create_app(detector_from_args(args), settings)
        log.info(
            "serving %s: the page at /, the API at /v1/detect (Ctrl-C stops)", args.weights or args.model or args.onnx
        )
        serve_forever(app, host=args.host, port=args.port, drain_timeout_s=args.drain_timeout)
    except MissingPackageError as e:
        raise UsageError(str(e)) from None
    return 0
