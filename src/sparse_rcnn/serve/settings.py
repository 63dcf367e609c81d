"""The service's limits and options (``ServeSettings``) and the errors a request can meet.

Every limit has a default fit for one machine; ``create_app`` and the ``serve`` command take them.
Each error carries the HTTP status it answers with; its message is one line for the client.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..data import MAX_PIXELS


@dataclass(frozen=True)
class ServeSettings:
    """max_batch: requests gathered into one batch; max_wait_ms: how long a batch waits to fill;
    shared_forward: run a batch as one forward (faster for small models and on GPUs, answers equal to
    batch 1 only up to float rounding; default: each image alone, bit-identical); max_queue: requests
    waiting for the model beyond which new ones get 503; timeout_s: a request's deadline (504);
    max_upload_mb: the largest body accepted (413); max_pixels: the largest image (413, at most
    ``data.MAX_PIXELS``); api_key: when set, every route but the probes and the page
    (``app.OPEN_ROUTES``) needs ``Authorization: Bearer <api_key>``; cors_origins: origins allowed
    to call from a browser (none: CORS off); warmup: run one forward before ``/readyz`` says ready."""

    max_batch: int = 8
    max_wait_ms: float = 5.0
    shared_forward: bool = False
    max_queue: int = 64
    timeout_s: float = 30.0
    max_upload_mb: float = 20.0
    max_pixels: int = MAX_PIXELS
    api_key: Optional[str] = None
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    warmup: bool = True

    def __post_init__(self) -> None:
        checks = {
            "max_batch": self.max_batch >= 1,
            "max_wait_ms": self.max_wait_ms >= 0,
            "max_queue": self.max_queue >= 1,
            "timeout_s": self.timeout_s > 0,
            "max_upload_mb": self.max_upload_mb > 0,
            "max_pixels": 1 <= self.max_pixels <= MAX_PIXELS,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"`{name}` cannot be {value!r}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("`api_key` cannot be empty; leave it unset to serve without a key")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RequestError(Exception):
    """A request the service refuses; ``status`` is its HTTP status, the message is for the client."""

    status = 400
    headers: dict[str, str] = {}

    def __init__(self, message: str, status: Optional[int] = None, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status or type(self).status
        self.headers = headers or {}


class QueueFull(RequestError):
    """More requests are waiting for the model than ``max_queue``."""

    status = 503


class DeadlineExceeded(RequestError):
    """No answer within ``timeout_s``."""

    status = 504


class ModelFailed(RequestError):
    """The model raised on the batch holding this request."""

    status = 500
