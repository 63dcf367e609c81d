"""Running the app on uvicorn in this process until SIGTERM / Ctrl-C, then draining.

On the first SIGTERM or SIGINT uvicorn stops accepting connections, lets the requests in flight
finish (at most ``drain_timeout_s``), then the app's lifespan answers what is still queued and
stops the model's worker thread; ``serve_forever`` then returns normally (the command exits 0).
"""

from __future__ import annotations

import logging
import math
import signal
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


def serve_forever(app: Any, *, host: str = "127.0.0.1", port: int = 8000, drain_timeout_s: float = 30.0) -> None:
    """Serve ``app`` (an ASGI app, e.g. ``create_app(...)``) on ``host``:``port`` until a signal.

    uvicorn re-raises the signal it caught once it has shut down; the handlers installed here
    receive it and only note it, so the process ends by returning, not by the signal."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=math.ceil(drain_timeout_s),
        log_level="info",
        access_log=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in _SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        log.info("stopped by %s after draining", signal.Signals(caught[0]).name)
    if not server.started:
        raise OSError(f"could not serve on {host}:{port} (see the log above)")


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
