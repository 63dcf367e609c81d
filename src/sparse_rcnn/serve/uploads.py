"""Reading an uploaded image from a request, in memory: the body (bounded by ``max_upload_bytes``),
a multipart field ``image`` or a raw ``image/*`` body, decoded as ``predict`` decodes the same file,
and the ``score_thr`` query parameter. Nothing is written to disk and nothing is fetched by URL.
"""

from __future__ import annotations

import math
from typing import Any, AsyncIterator, Optional, Union, cast

from python_multipart.multipart import MultipartParser, parse_options_header

from ..data import ImageError, ImageTooLargeError, decode_image
from ..inference import Item, prepare
from .settings import RequestError

FIELD = "image"  # the multipart field that carries the image


async def read_body(content_length: Optional[str], chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``max_bytes``
    (by its ``Content-Length`` or while it streams in)."""
    too_large = RequestError(f"the upload is larger than the {max_bytes / 2**20:g} MB limit", status=413)
    if content_length is not None:
        try:
            if int(content_length) > max_bytes:
                raise too_large
        except ValueError:
            raise RequestError("bad Content-Length header") from None
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def image_bytes(content_type: Optional[str], body: bytes) -> tuple[str, bytes]:
    """(file name, image bytes) of a request: the multipart field ``image`` (its file name, or "")
    or a raw body sent as ``image/*`` (name ""). Raises ``RequestError`` (400, 415) otherwise."""
    raw_media, params = parse_options_header(content_type or "")
    media = raw_media.decode("latin-1").lower()
    if media == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise RequestError("multipart body without a boundary")
        return _multipart_image(body, boundary)
    if media.startswith("image/"):
        if not body:
            raise RequestError("empty body: send the image's bytes")
        return "", body
    shown = media or "none"
    raise RequestError(
        f"unsupported content type {shown!r}: send multipart/form-data with a field {FIELD!r}, "
        "or the image's bytes as image/*",
        status=415,
    )


def _multipart_image(body: bytes, boundary: bytes) -> tuple[str, bytes]:
    parts: list[dict] = []
    header: dict = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header["field"].decode("latin-1").lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    try:
        parser = MultipartParser(boundary, cast(Any, callbacks))
        parser.write(body)
        parser.finalize()
    except Exception:
        raise RequestError("malformed multipart body") from None
    for part in parts:
        _, options = parse_options_header(part["headers"].get("content-disposition", b""))
        if options.get(b"name") == FIELD.encode():
            if not part["data"]:
                raise RequestError(f"the field {FIELD!r} is empty: attach an image file")
            name = options.get(b"filename", b"").decode("utf-8", "replace")
            return name, bytes(part["data"])
    raise RequestError(f"no field {FIELD!r} in the form: attach the image as {FIELD!r}")


def prepared_image(name: str, data: bytes, test_scale: tuple[int, int], max_pixels: int) -> Item:
    """Decode and resize (CPU work: call it off the event loop). Raises ``RequestError``: 413 for an
    image over ``max_pixels``, 422 for bytes that are not a whole image."""
    label = name or "upload"
    try:
        array = decode_image(data, label, max_pixels=max_pixels)
    except ImageTooLargeError as e:
        raise RequestError(str(e), status=413) from None
    except ImageError as e:
        raise RequestError(str(e), status=422) from None
    return prepare(0, name, array, test_scale)


def parse_score_thr(text: Optional[str]) -> Union[float, str]:
    """The ``score_thr`` query parameter: a number in [0, 1] or ``auto`` (default 0)."""
    if text is None or text == "":
        return 0.0
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise RequestError(f"`score_thr` must be a number in [0, 1] or auto, got {text[:40]!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RequestError(f"`score_thr` must be a number in [0, 1] or auto, got {text[:40]!r}")
    return value
