"""One HTTP request handed from a front process to the app in another (Ray Serve's replicas) as
plain data, answered there by calling the ASGI app in-process, and retried once when the process
that held it died: the request either gets the app's answer or a clean 503, never a bare 500.

``Forwarded`` and ``Answer`` are what crosses between the processes (picklable, no sockets);
``call_app`` runs one ``Forwarded`` through an ASGI app; ``forward`` is the front's side: read the
body within the upload limit, call, retry once on a lost replica, bound the whole by a deadline.
Nothing here imports Ray: the caller names the errors that mean "the replica is gone".
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from .settings import RequestError, ServeSettings
from .uploads import read_body

log = logging.getLogger(__name__)
# request headers that describe the connection or the body's framing, not the request: the body
# crosses whole, so the app sees it with its own Content-Length
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"content-length"}


@dataclass(frozen=True)
class Forwarded:
    """An HTTP request as data: ``headers`` are (lower-case name, value) byte pairs."""

    method: str
    path: str
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as data; ``own``: the front's own refusal, made without the app."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    own: bool = False


def appended(answer: Answer, extra: bytes) -> Answer:
    """``answer`` with ``extra`` after its body and its ``Content-Length`` set to match."""
    body = answer.body + extra
    headers = tuple((k, v) for k, v in answer.headers if k.lower() != b"content-length")
    return Answer(answer.status, headers + ((b"content-length", str(len(body)).encode()),), body, answer.own)


def forwarded(
    method: str, path: str, query_string: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> Forwarded:
    """The request to hand on: connection headers dropped, ``Content-Length`` set to the body's."""
    kept = tuple((k.lower(), v) for k, v in headers if k.lower() not in _HOP_BY_HOP)
    return Forwarded(method, path, query_string, kept + ((b"content-length", str(len(body)).encode()),), body)


async def call_app(app: Any, request: Forwarded) -> Answer:
    """``request`` through the ASGI ``app`` in this process (its lifespan already started)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query_string,
        "root_path": "",
        "headers": list(request.headers),
        "client": None,
        "server": None,
    }
    body_sent = False
    done = asyncio.Event()
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await done.wait()  # the client stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    if "status" not in start:
        raise RuntimeError("the app ended without an answer")
    return Answer(int(start["status"]), tuple((k, v) for k, v in start.get("headers", [])), b"".join(chunks))


def json_answer(status: int, message: str, headers: Optional[dict[str, str]] = None) -> Answer:
    """The service's one shape of a refusal, ``{"error": message}``, as an ``Answer``."""
    body = json.dumps({"error": message}, separators=(",", ":")).encode()  # as the app writes it
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    pairs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Answer(status, tuple(pairs), body, own=True)


async def forward(
    method: str,
    path: str,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    chunks: AsyncIterator[bytes],
    call: Callable[[Forwarded], Awaitable[Answer]],
    settings: ServeSettings,
    *,
    lost: tuple[type[BaseException], ...],
    busy: tuple[type[BaseException], ...] = (),
) -> Answer:
    """The front's answer to one request: its body read within ``settings.max_upload_bytes`` (413),
    then ``call(request)``; when that raises one of ``lost`` (the replica holding the request died)
    it is called once more (the caller's router picks a live replica), and a second loss answers
    503 with ``Retry-After``. ``busy`` errors (the callee's queue is full) answer 503 at once; no
    answer within ``settings.timeout_s`` answers 504; anything else 500. Every refusal is JSON."""
    length = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-length"), None)
    try:
        body = await read_body(length, chunks, settings.max_upload_bytes)
    except RequestError as e:
        return json_answer(e.status, str(e), e.headers)
    request = forwarded(method, path, query_string, headers, body)
    try:
        return await asyncio.wait_for(_call_retrying(call, request, lost), settings.timeout_s)
    except asyncio.TimeoutError:
        return json_answer(504, f"no answer within the {settings.timeout_s:g} s deadline")
    except busy as e:
        log.warning("no replica free: %s", e)
        return json_answer(503, "all model replicas are busy; retry shortly", {"Retry-After": "1"})
    except Exception as e:
        log.exception("forwarding %s %s failed", method, path)
        return json_answer(500, f"internal error: {type(e).__name__}")


async def _call_retrying(
    call: Callable[[Forwarded], Awaitable[Answer]], request: Forwarded, lost: tuple[type[BaseException], ...]
) -> Answer:
    try:
        return await call(request)
    except lost as e:
        log.warning(
            "the replica answering %s %s was lost (%s); trying another", request.method, request.path, type(e).__name__
        )
    try:
        return await call(request)
    except lost as e:
        log.warning("the retry of %s %s was lost too (%s)", request.method, request.path, type(e).__name__)
        return json_answer(503, "the model replica stopped while answering; retry shortly", {"Retry-After": "1"})
