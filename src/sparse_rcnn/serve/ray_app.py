"""The same app on Ray Serve (``pip install sparse-rcnn[ray]``): N model replicas, each loading the
model once and running the single-process app (batching, limits, metrics), behind a light front
deployment that Ray's HTTP proxy calls. The front hands each request to a model replica through a
``DeploymentHandle``; a replica that dies holding a request costs that request one retry on another
replica, or a clean 503 with ``Retry-After`` (never Ray's bare 500, never a hang: the deadline holds).

From Python: ``run_on_ray(load, settings, replicas=2)``; from the command line
``sparse-rcnn serve --ray --replicas N``; or with Ray's own CLI through the application builder::

    serve run sparse_rcnn.serve.ray_app:build weights=model.pth replicas=2

(``build``'s arguments: ``model``, ``weights``, ``device``, or ``onnx`` with ``runtime``, ``dtype``,
``threads``; ``replicas``, ``fronts``, ``max_batch``, ``max_wait_ms``, ``max_queue``, ``timeout_s``,
``shared_forward`` (true or false).)
Ray is imported only here, when asked for; without it a ``MissingPackageError`` says what to install.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Optional

from starlette.responses import Response

from ..deploy import MissingPackageError, load_detector
from ..models import Detector, load_model
from ..ops import keep_freed_memory
from .app import create_app
from .forward import Answer, Forwarded, appended, call_app, forward
from .metrics import FrontMetrics
from .settings import ServeSettings

log = logging.getLogger(__name__)
DEPLOYMENT = "sparse_rcnn"  # the application's name; its deployments:
FRONT, MODEL = "front", "model"


def _ray_serve() -> Any:
    try:
        from ray import serve
    except ImportError:
        raise MissingPackageError("Ray Serve is not installed: pip install 'sparse-rcnn[ray]'") from None
    return serve


class ModelReplica:
    """One model replica: the whole app (``create_app``) over its own detector, started with its
    lifespan (batcher, warm-up) and called in-process with the requests the front hands on. Its
    process is the deployment's own, so it keeps freed memory as the ``sparse-rcnn`` command does."""

    async def __init__(self, load: Callable[[], Detector], settings: ServeSettings) -> None:  # type: ignore[misc]
        keep_freed_memory()  # before the model and its worker thread allocate (ops/allocator.py)
        self.app = create_app(load(), settings)
        self._lifespan: Optional[Any] = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()

    async def handle(self, request: Forwarded) -> Answer:
        return await call_app(self.app, request)

    async def __del__(self) -> None:  # Ray Serve awaits it on a graceful stop: answer what is queued
        lifespan, self._lifespan = getattr(self, "_lifespan", None), None
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)


class Front:
    """The HTTP ingress: hands each request to a model replica through a ``DeploymentHandle`` and
    turns a replica that died holding it into one retry elsewhere, then a clean 503 (``forward``).
    Its own refusals are counted (``FrontMetrics``) and shown after the replica's ``/metrics``."""

    def __init__(self, model: Any, settings: ServeSettings) -> None:
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

        self.model, self.settings = model, settings
        self.lost = (RayActorError, ReplicaUnavailableError)  # ActorDiedError, ActorUnavailableError among them
        self.busy = (BackPressureError, DeploymentUnavailableError)
        self.metrics = FrontMetrics()

    async def __call__(self, request: Any) -> Any:
        answer = await forward(
            request.method,
            request.url.path,
            request.url.query.encode("latin-1"),
            list(request.headers.raw),
            request.stream(),
            self._call,
            self.settings,
            lost=self.lost,
            busy=self.busy,
        )
        if answer.own:
            self.metrics.count(request.url.path, answer.status)
        if request.url.path == "/metrics" and answer.status == 200:
            answer = appended(answer, self.metrics.render())
        response = Response(answer.body, status_code=answer.status)
        response.raw_headers = list(answer.headers)
        return response

    async def _call(self, request: Forwarded) -> Answer:
        return await self.model.handle.remote(request)


def application(load: Callable[[], Detector], settings: ServeSettings, *, replicas: int = 1, fronts: int = 1) -> Any:
    """The Ray Serve application: ``fronts`` ingress replicas (``Front``, light: HTTP in, a handle
    call out) before ``replicas`` model replicas (``ModelReplica``). A model replica takes up to
    ``max_batch + max_queue`` requests; beyond that the front's handle queues ``max_queue`` more
    and then answers 503."""
    if replicas < 1 or fronts < 1:
        raise ValueError(f"`replicas` and `fronts` must be at least 1, got {replicas} and {fronts}")
    serve = _ray_serve()
    per_replica = settings.max_batch + settings.max_queue
    model = serve.deployment(
        ModelReplica,
        name=MODEL,
        num_replicas=replicas,
        max_ongoing_requests=per_replica,
        max_queued_requests=settings.max_queue,
        ray_actor_options={"num_cpus": 0},
    )
    front = serve.deployment(
        Front,
        name=FRONT,
        num_replicas=fronts,
        max_ongoing_requests=replicas * per_replica + settings.max_queue,
        max_queued_requests=settings.max_queue,
        ray_actor_options={"num_cpus": 0},
    )
    return front.bind(model.bind(load, settings), settings)


def run_on_ray(
    load: Callable[[], Detector],
    settings: ServeSettings,
    *,
    replicas: int = 1,
    fronts: int = 1,
    address: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: Optional[int] = None,
    blocking: bool = False,
) -> None:
    """Start (or join, with ``address``: ``"auto"`` or ``"ray://HEAD:10001"``) a Ray instance and run
    ``replicas`` model replicas and ``fronts`` front replicas behind Ray Serve's HTTP proxy on
    ``host``:``port``. ``num_cpus`` caps a local instance. With ``blocking`` it returns only when
    Serve is shut down (Ctrl-C)."""
    serve = _ray_serve()  # first: a one-line error without Ray
    import ray

    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    app = application(load, settings, replicas=replicas, fronts=fronts)
    serve.run(app, name=DEPLOYMENT, route_prefix="/", blocking=blocking)


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


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got {value!r}")
    return value.lower() in ("true", "1")


def build(args: dict[str, str]) -> Any:
    """Ray Serve's application builder (``serve run sparse_rcnn.serve.ray_app:build key=value ...``)."""
    known = {"model", "weights", "device", "onnx", "runtime", "dtype", "threads", "replicas", "fronts"}
    limits: dict[str, Callable[[str], Any]] = {
        "max_batch": int,
        "max_wait_ms": float,
        "max_queue": int,
        "timeout_s": float,
        "shared_forward": _flag,
    }
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
    return application(load, settings, replicas=int(args.get("replicas", 1)), fronts=int(args.get("fronts", 1)))
