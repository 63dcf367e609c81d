"""Reading images the way users see them: RGB uint8, EXIF orientation applied, clear errors.

Grayscale, palette, RGBA (alpha dropped, as OpenCV's ``IMREAD_COLOR``), CMYK and 16-bit images
(scaled to 8 bits by >> 8, as OpenCV) all become (H, W, 3) uint8 RGB. A file that cannot be used
raises ``ImageError`` with a one-line message naming the file and the cause.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
MAX_PIXELS = 100_000_000  # ~ 10000 x 10000; larger images are refused rather than exhausting memory


class ImageError(ValueError):
    """An image file cannot be read; the message names the file and the cause."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than the limit (a decompression bomb, or simply too big to decode)."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array in its displayed orientation."""
    with _opened(path) as img:
        check_size(path, img.width, img.height)
        return to_rgb_array(ImageOps.exif_transpose(img))


def image_size(path: Union[str, Path]) -> tuple[int, int]:
    """(width, height) of ``path`` as displayed (EXIF orientation applied), from the header only:
    the size ``read_image`` decodes to. Raises ``ImageError`` like ``read_image``."""
    with _opened(path) as img:
        w, h = img.size
        orientation = img.getexif().get(_ORIENTATION, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)  # the orientations that rotate by 90 degrees


_ORIENTATION = 0x0112  # EXIF tag


def decode_image(data: bytes, name: str = "upload", *, max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode the bytes of an image file in memory to what ``read_image`` gives for that file: an
    (H, W, 3) uint8 RGB array in its displayed orientation. ``name`` starts error messages; images
    over ``max_pixels`` (at most, and by default, ``MAX_PIXELS``) raise ``ImageTooLargeError`` before decoding."""
    if not data:
        raise ImageError(f"{name}: empty file")
    with _decoding(io.BytesIO(data), name) as img:
        check_size(name, img.width, img.height, max_pixels=min(max_pixels or MAX_PIXELS, MAX_PIXELS))
        return to_rgb_array(ImageOps.exif_transpose(img))


@contextlib.contextmanager
def _opened(path: Union[str, Path]) -> Iterator[Image.Image]:
    """The PIL image of ``path`` (header read, pixels not yet); every failure becomes ``ImageError``."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: {'a symlink loop' if path.is_symlink() else 'no such file'}")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    with _decoding(path, path) as img:
        yield img


@contextlib.contextmanager
def _decoding(source: Any, path: Union[str, Path]) -> Iterator[Image.Image]:
    """The PIL image of ``source`` (a path or a binary file object; header read, pixels not yet);
    every failure while it is open becomes ``ImageError`` naming ``path``."""
    try:
        with warnings.catch_warnings():
            # Our MAX_PIXELS check is the limit; Pillow's own (89 MP) would pre-empt it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:  # reads the header only
                yield img
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image, or an unsupported/corrupt format") from None
    except Image.DecompressionBombError as e:  # Pillow refuses > 179 MP while parsing the header
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels.group(1)) / 1e6:.0f} MP" if pixels else "it"
        raise ImageTooLargeError(
            f"{path}: {size} is larger than the {MAX_PIXELS / 1e6:.0f} MP limit; downscale it first"
        ) from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageError(f"{path}: corrupt or truncated image ({reason})") from None


def check_size(path: Union[str, Path], width: int, height: int, *, max_pixels: Optional[int] = None) -> None:
    """Refuse images over ``max_pixels`` (default ``MAX_PIXELS``) before decoding them (``ImageTooLargeError``)."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} is larger than the {max_pixels / 1e6:.6g} MP limit; downscale it first"
        )


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit: keep the high byte, as OpenCV
        arr = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if img.mode == "I":  # 32-bit integers: values above 255 are taken as 16-bit data
        arr = np.asarray(img).astype(np.int64)
        arr = np.clip(arr >> 8, 0, 255) if arr.max() > 255 else np.clip(arr, 0, 255)
        return np.ascontiguousarray(np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2))
    if img.mode == "F":
        arr = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def expand_image_paths(paths: Iterable[Union[str, Path]]) -> list[str]:
    """Paths as given; a directory expands to the image files inside it (sorted, not recursive,
    hidden files skipped). A directory without any raises ``ImageError``."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(
                str(c)
                for c in path.iterdir()
                if c.suffix.lower() in IMAGE_EXTENSIONS and not c.name.startswith(".") and c.is_file()
            )
            if not found:
                raise ImageError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += found
        else:
            out.append(str(p))
    return out


def to_image_tensor(x: Any) -> Tensor:
    """A path, PIL image, (H, W, 3) RGB array or (3, H, W) tensor -> (3, H, W) tensor.

    Arrays may also be (H, W) or (H, W, 1) grey or (H, W, 4) RGBA (alpha dropped, as for files).
    PIL images are used as given: apply ``PIL.ImageOps.exif_transpose`` first for EXIF rotation.
    """
    if isinstance(x, (str, Path)):
        x = read_image(x)
    if isinstance(x, Image.Image):
        x = to_rgb_array(x)
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim == 3 and x.shape[2] == 1:
            x = np.repeat(x, 3, axis=2)
        if x.ndim == 3 and x.shape[2] == 4:
            x = x[..., :3]
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB array, got shape {x.shape}")
        if x.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 (0-255) array, got {x.dtype}; for 0-1 floats pass "
                "(x * 255).round().astype(np.uint8), or a float (3, H, W) tensor"
            )
        x = np.ascontiguousarray(x) if x.flags.writeable else x.copy()  # torch wants a writable buffer
        x = torch.from_numpy(x).permute(2, 0, 1)
    if isinstance(x, Tensor):
        if x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[2] == 0:
            raise ValueError(f"empty image of shape {tuple(x.shape)}")
        return x
    raise TypeError(f"cannot use {type(x).__name__} as an image; pass a path, PIL image, array or tensor")
