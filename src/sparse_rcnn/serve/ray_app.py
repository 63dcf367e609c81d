"""The same app on Ray Serve: N replicas, each loading the model once and batching like the
single-process service, behind Ray's HTTP proxy (``pip install sparse-rcnn[ray]``).

From Python: ``run_on_ray(load, settings, replicas=2)``; from the command line
``sparse-rcnn serve --ray --replicas N``; or with Ray's own CLI through the application builder::

    serve run sparse_rcnn.serve.ray_app:build weights=model.pth replicas=2

(``build``'s arguments: ``model``, ``weights``, ``device``, or ``onnx`` with ``runtime``, ``dtype``,
``threads``; ``replicas``, ``max_batch``, ``max_wait_ms``, ``max_queue``, ``timeout_s``.)
Ray is imported only here, when asked for; without it a ``MissingPackageError`` says what to install.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Optional

from ..deploy import MissingPackageError, load_detector
from ..models import Detector, load_model
from .app import create_app
from .settings import ServeSettings

log = logging.getLogger(__name__)
DEPLOYMENT = "sparse_rcnn"


def _ray_serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise MissingPackageError("Ray Serve is not installed: pip install 'sparse-rcnn[ray]'") from None
    return serve


class Replica:
    """One replica: loads its detector with ``load()`` and serves ``create_app(detector, settings)``."""

    def __init__(self, load: Callable[[], Detector], settings: ServeSettings) -> None:
        self.load, self.settings = load, settings

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.load(), self.settings)


def application(load: Callable[[], Detector], settings: ServeSettings, *, replicas: int = 1) -> Any:
    """The Ray Serve application (bound deployment) of ``replicas`` copies of the service. Each
    replica takes up to ``max_batch + max_queue`` requests; beyond that Ray's proxy queues at most
    ``max_queue`` per caller and answers 503."""
    if replicas < 1:
        raise ValueError(f"`replicas` must be at least 1, got {replicas}")
    serve = _ray_serve()
    ingress = serve.ingress()(Replica)
    deployment = serve.deployment(
        ingress,
        name=DEPLOYMENT,
        num_replicas=replicas,
        max_ongoing_requests=settings.max_batch + settings.max_queue,
        max_queued_requests=settings.max_queue,
        ray_actor_options={"num_cpus": 0},
    )
    return deployment.bind(load, settings)


def run_on_ray(
    load: Callable[[], Detector],
    settings: ServeSettings,
    *,
    replicas: int = 1,
    address: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: Optional[int] = None,
    blocking: bool = False,
) -> None:
    """Start (or join, with ``address``: ``"auto"`` or ``"ray://HEAD:10001"``) a Ray instance and run
    ``replicas`` replicas behind Ray Serve's HTTP proxy on ``host``:``port``. ``num_cpus`` caps a
    local instance. With ``blocking`` it returns only when Serve is shut down (Ctrl-C)."""
    serve = _ray_serve()  # first: a one-line error without Ray
    import ray

    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(load, settings, replicas=replicas), name=DEPLOYMENT, route_prefix="/", blocking=blocking)


def loader(
    model: Optional[str] = None,
    weights: Optional[str] = None,
    *,
    device: str = "cpu",
    onnx: Optional[str] = None,
    runtime: str = "onnxruntime",
    dtype: str = "fp32",
    threads: Optional[int] = None,
) -> Callable[[], Detector]:
    """A picklable ``load()`` for replicas: the PyTorch model, or with ``onnx`` the exported file."""
    if onnx:
        return functools.partial(load_detector, onnx, runtime=runtime, dtype=dtype, threads=threads)
    return functools.partial(load_model, model, weights, device=device)


def build(args: dict[str, str]) -> Any:
    """Ray Serve's application builder (``serve run sparse_rcnn.serve.ray_app:build key=value ...``)."""
    known = {"model", "weights", "device", "onnx", "runtime", "dtype", "threads", "replicas"}
    limits = {"max_batch": int, "max_wait_ms": float, "max_queue": int, "timeout_s": float}
    unknown = set(args) - known - set(limits)
    if unknown:
        raise ValueError(f"unknown arguments {sorted(unknown)}; known: {sorted(known | set(limits))}")
    load = loader(
        args.get("model"),
        args.get("weights"),
        device=args.get("device", "cpu"),
        onnx=args.get("onnx"),
        runtime=args.get("runtime", "onnxruntime"),
        dtype=args.get("dtype", "fp32"),
        threads=int(args["threads"]) if args.get("threads") else None,
    )
    settings = ServeSettings(**{k: cast(args[k]) for k, cast in limits.items() if k in args})
    return application(load, settings, replicas=int(args.get("replicas", 1)))
