"""The detector as a long-running HTTP service: dynamic batching by input shape, limits, metrics,
a page to try it in a browser (``app``), run on uvicorn (``server``) or scaled out on Ray Serve
(``ray_app``). Needs ``pip install sparse-rcnn[serve]`` (and ``[ray]`` for Ray Serve); without
them importing this package works and its entry points raise ``MissingPackageError``."""

from ..deploy import MissingPackageError
from .batcher import DynamicBatcher
from .settings import DeadlineExceeded, ModelFailed, QueueFull, RequestError, ServeSettings

MISSING = None  # the name of the `serve` extra's package that is not installed, if one is not

try:
    from .app import create_app
    from .ray_app import application, build, loader, run_on_ray
    from .server import serve_forever
except ModuleNotFoundError as _missing:  # the `serve` extra is not installed: say so when used
    MISSING = _missing.name

    def _needs_extra(*args, **kwargs):
        raise MissingPackageError(f"{MISSING} is not installed: pip install 'sparse-rcnn[serve]'")

    create_app = application = build = loader = run_on_ray = serve_forever = _needs_extra

__all__ = [
    "MISSING",
    "create_app",
    "serve_forever",
    "run_on_ray",
    "application",
    "build",
    "loader",
    "ServeSettings",
    "DynamicBatcher",
    "RequestError",
    "QueueFull",
    "DeadlineExceeded",
    "ModelFailed",
    "MissingPackageError",
]
