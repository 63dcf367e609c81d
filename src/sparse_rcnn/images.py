"""Reading images the way users see them: RGB uint8, EXIF orientation applied, clear errors.

Grayscale, palette, RGBA (alpha dropped, as OpenCV's ``IMREAD_COLOR``), CMYK and 16-bit images
(scaled to 8 bits by >> 8, as OpenCV) all become (H, W, 3) uint8 RGB. A file that cannot be used
raises ``ImageError`` with a one-line message naming the file and the cause.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Iterable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
MAX_PIXELS = 100_000_000  # ~ 10000 x 10000; larger images are refused rather than exhausting memory


class ImageError(ValueError):
    """An image file cannot be read; the message names the file and the cause."""


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array in its displayed orientation."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            # Our MAX_PIXELS check below is the limit; Pillow's own (89 MP) would pre-empt it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # reads the header only
                check_size(path, img.width, img.height)
                img = ImageOps.exif_transpose(img)
                return to_rgb_array(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image, or an unsupported/corrupt format") from None
    except Image.DecompressionBombError as e:  # Pillow refuses > 179 MP while parsing the header
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(pixels.group(1)) / 1e6:.0f} MP" if pixels else "it"
        raise ImageError(f"{path}: {size} is larger than the {MAX_PIXELS / 1e6:.0f} MP limit; downscale it first") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageError(f"{path}: corrupt or truncated image ({reason})") from None


def check_size(path: Union[str, Path], width: int, height: int) -> None:
    """Refuse images over ``MAX_PIXELS`` before decoding them."""
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{path}: {width}x{height} is larger than the {MAX_PIXELS / 1e6:.0f} MP limit; downscale it first"
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
                str(c) for c in path.iterdir()
                if c.suffix.lower() in IMAGE_EXTENSIONS and not c.name.startswith(".") and c.is_file()
            )
            if not found:
                raise ImageError(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            out += found
        else:
            out.append(str(p))
    return out
