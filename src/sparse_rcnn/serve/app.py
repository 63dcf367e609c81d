"""The HTTP service as an ASGI app (FastAPI): ``create_app(detector, settings)``.

Routes: ``POST /v1/detect`` (one image -> the record ``predict`` writes for it), ``GET /healthz``
(alive), ``GET /readyz`` (model warmed up; 503 before), ``GET /metrics`` (Prometheus text),
``GET /`` and ``GET /page.js`` (a page to try the model), ``GET /v1/info`` (what the page needs).
Every refusal is a 4xx/5xx with a one-line JSON ``{"error": "..."}``; no traceback reaches a client.
With an API key, every route but ``OPEN_ROUTES`` (the probes and the page) answers 401 without it.
Run it with uvicorn (``sparse-rcnn serve`` does), or on Ray Serve (``serve.ray_app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from importlib import resources
from typing import Any, AsyncIterator, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..checkpoints import CheckpointError
from ..inference import prepare
from ..models import Detector, keep_scores, resolve_score_thr, to_record
from .batcher import DynamicBatcher
from .metrics import ServeMetrics
from .settings import DeadlineExceeded, RequestError, ServeSettings
from .uploads import image_bytes, parse_score_thr, prepared_image, read_body

log = logging.getLogger(__name__)
# the routes a request without the API key may reach: the probes, and the page (which holds no data:
# it asks for the key, and its requests carry it); every other path, unknown ones too, needs the key
OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/", "/page.js"})
PAGE_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def _page_file(name: str) -> bytes:
    return resources.files(__package__).joinpath("page", name).read_bytes()


def error(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    """The one shape of every refusal: ``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(detector: Detector, settings: Optional[ServeSettings] = None) -> FastAPI:
    """The service over ``detector`` (any ``models.Detector``) with ``settings``' limits.

    The model runs in one worker thread behind a ``DynamicBatcher`` started with the app's lifespan
    (uvicorn, Ray Serve and ``TestClient`` as a context manager all run it); warm-up (one forward)
    follows in the background and ``/readyz`` answers 200 once it is done."""
    settings = settings or ServeSettings()
    batcher = DynamicBatcher(
        detector,
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        shared_forward=settings.shared_forward,
    )
    metrics = ServeMetrics(settings.max_batch, lambda: batcher.depth)
    batcher.on_batch = metrics.batch_size.observe
    state: dict[str, Any] = {"ready": False, "warmup": None}
    page, script = _page_file("index.html"), _page_file("page.js")
    scale = (int(detector.test_scale[0]), int(detector.test_scale[1]))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # decoding runs beside the model in threads; at most one per CPU at a time bounds its memory
        state["decoding"] = asyncio.Semaphore(os.cpu_count() or 2)
        batcher.start()
        state["warmup"] = asyncio.get_running_loop().create_task(_warm_up(detector, batcher, settings, state))
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.close()

    app = FastAPI(title="sparse-rcnn", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.batcher, app.state.metrics, app.state.settings = batcher, metrics, settings

    @app.middleware("http")  # first, so that CORS (when on) answers preflights and decorates refusals
    async def require_api_key(request: Request, call_next):
        if request.url.path not in OPEN_ROUTES:
            denied = _unauthorized(request, settings.api_key)
            if denied is not None:
                return denied
        return await call_next(request)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        metrics.count(request.url.path, response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if not state["ready"]:
            return error(503, "warming up: the model is not ready yet", {"Retry-After": "1"})
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics_page() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/")
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_SECURITY)

    @app.get("/page.js")
    async def page_script() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8", headers=PAGE_SECURITY)

    @app.get("/v1/info")
    async def info() -> dict:
        return {
            "class_names": list(detector.class_names),
            "api_key_required": settings.api_key is not None,
            "max_upload_mb": settings.max_upload_mb,
        }

    @app.post("/v1/detect")
    async def detect(request: Request) -> Response:
        try:
            asked = parse_score_thr(request.query_params.get("score_thr"))
            try:
                thr = resolve_score_thr(detector, asked)
            except CheckpointError as e:
                raise RequestError(str(e)) from None
            try:
                record = await asyncio.wait_for(_answer(request, thr), settings.timeout_s)
            except asyncio.TimeoutError:
                raise DeadlineExceeded(f"no answer within the {settings.timeout_s:g} s deadline") from None
        except RequestError as e:
            return error(e.status, str(e), e.headers)
        except Exception as e:  # anything unforeseen: one line to the client, the traceback to the log
            log.exception("detect failed")
            return error(500, f"internal error: {type(e).__name__}")
        return JSONResponse(record)

    async def _answer(request: Request, thr: Any) -> dict:
        body = await read_body(request.headers.get("content-length"), request.stream(), settings.max_upload_bytes)
        name, data = image_bytes(request.headers.get("content-type"), body)
        async with state["decoding"]:
            item = await asyncio.to_thread(prepared_image, name, data, scale, settings.max_pixels)
        det = keep_scores(await batcher.detect(item), thr)
        assert item.original is not None, "a prepared item without an error has its image"
        h, w = item.original.shape[-2:]
        return to_record(name, int(w), int(h), det, detector.class_names)

    return app


def _unauthorized(request: Request, api_key: Optional[str]) -> Optional[JSONResponse]:
    """401 unless the request carries ``Authorization: Bearer <api_key>`` (compared in constant time)."""
    if api_key is None:
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode()):
        return None
    return error(401, "missing or wrong API key: send Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"})


async def _warm_up(detector: Detector, batcher: DynamicBatcher, settings: ServeSettings, state: dict) -> None:
    """One forward on a blank image of the test scale (first-call allocations, lazy compiles), then ready."""
    if settings.warmup:
        short, long = min(detector.test_scale), max(detector.test_scale)
        scale = (int(detector.test_scale[0]), int(detector.test_scale[1]))
        item = prepare(0, "warmup", np.zeros((short, long, 3), np.uint8), scale)
        try:
            await batcher.detect(item)
        except Exception:
            log.exception("warm-up failed; the service stays not ready")
            return
    state["ready"] = True
    log.info("ready")
