"""Reading images as users have them: modes, EXIF orientation, size limits, folders, corrupt files;
every unusable file is a one-line ``ImageError`` naming the file and the cause."""

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from sparse_rcnn.data import images
from sparse_rcnn.data.images import ImageError, expand_image_paths, read_image

SCALE = (64, 48)  # a small test scale keeps each tiny-model forward in milliseconds


def scene(h: int = 24, w: int = 40) -> np.ndarray:
    """An asymmetric RGB image: red block top-left, green bottom-right, blue stripe at the top."""
    img = np.full((h, w, 3), 90, np.uint8)
    img[: h // 3, : w // 4] = (255, 0, 0)
    img[-h // 3 :, -w // 4 :] = (0, 255, 0)
    img[0:2, :] = (0, 0, 255)
    return img


def png_header(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, with almost no pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def make_bad_files(folder: Path) -> dict[str, str]:
    """Write one file per failure kind; returns {file name: word its error message must contain}."""
    folder.mkdir(parents=True, exist_ok=True)
    png, jpg = io.BytesIO(), io.BytesIO()
    Image.fromarray(scene()).save(png, format="PNG")
    Image.fromarray(scene()).save(jpg, format="JPEG", quality=95)
    png, jpg = png.getvalue(), jpg.getvalue()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "corrupt.png").write_bytes(png[:16] + bytes(range(256)) * 4)
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    (folder / "huge.png").write_bytes(png_header(50_000, 50_000))
    return {
        "empty.png": "empty",
        "truncated.png": "truncated",
        "truncated.jpg": "truncated",
        "corrupt.png": "not an image",
        "notes.jpg": "not an image",
        "huge.png": "MP limit",
    }


# ---------------------------------------------------------------------------------------------
# read_image


def test_unusable_files_raise_one_line_errors_naming_file_and_cause(tmp_path):
    for name, cause in make_bad_files(tmp_path).items():
        with pytest.raises(ImageError) as e:
            read_image(tmp_path / name)
        msg = str(e.value)
        assert msg.startswith(str(tmp_path / name)) and cause in msg and "\n" not in msg, msg
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)


def rgb_cv2(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "P+transparency", "I;16", "I;16 dark"])
def test_image_modes_decode_like_opencv(tmp_path, mode):
    """MMDetection decodes with cv2.imread(IMREAD_COLOR); every PNG mode must give its pixels."""
    rgb = scene()
    path = tmp_path / "x.png"
    if mode == "P+transparency":
        Image.fromarray(rgb).convert("P").save(path, transparency=0)
    elif mode.startswith("I;16"):  # 16-bit grey: OpenCV keeps the high byte, also for dark images
        grey = np.arange(rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]) * (68 if mode == "I;16" else 1)
        Image.fromarray(grey.astype(np.uint16)).save(path)
        assert Image.open(path).mode == "I;16"
    else:
        Image.fromarray(rgb).convert(mode).save(path)
    out = read_image(path)
    assert out.shape == (*rgb.shape[:2], 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb_cv2(path))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(scene()).convert("CMYK").save(path, quality=95)
    out = read_image(path)
    assert out.shape == (24, 40, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - scene().astype(int)).mean() < 6  # JPEG loss only, no colour inversion
    assert np.abs(out.astype(int) - rgb_cv2(path)).max() <= 2  # OpenCV's CMYK conversion rounds differently


# EXIF orientation -> how the displayed image is made from the stored pixels (TIFF/EXIF spec).
ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),  # rotate 90 degrees clockwise
    7: lambda a: np.rot90(a, k=2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),  # rotate 90 degrees counter-clockwise
}


def save_with_orientation(path: Path, stored: np.ndarray, orientation: int) -> None:
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, exif=exif, quality=95)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_gives_the_displayed_frame(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    save_with_orientation(path, scene(), orientation)
    with Image.open(path) as raw:  # the stored pixels, decoded without looking at EXIF
        stored = np.asarray(raw.convert("RGB"))
    out = read_image(path)
    np.testing.assert_array_equal(out, ORIENTATIONS[orientation](stored))
    ref = rgb_cv2(path)  # MMDetection decodes with OpenCV, which applies EXIF orientation too
    assert ref.shape == out.shape and np.abs(ref.astype(int) - out).mean() < 1
    if orientation == 6:  # clockwise: the red block that was top-left of the stored image is top-right
        assert out.shape == (40, 24, 3) and out[2, -5, 0] > 200 and out[2, -5, 1] < 80 and out[2, 2, 0] < 150


def test_size_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    # Headers only: decoding these would fail as "truncated", so the limit message proves no decode.
    (tmp_path / "a.png").write_bytes(png_header(10_000, 10_001))  # between Pillow's 89 and 179 MP
    with pytest.raises(ImageError, match=r"a\.png: 10000x10001 is larger than the 100 MP limit; downscale"):
        read_image(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(png_header(60_000, 40_000))  # Pillow refuses it while opening
    with pytest.raises(ImageError, match=r"b\.png: 2400 MP is larger than the 100 MP limit"):
        read_image(tmp_path / "b.png")
    Image.fromarray(scene()).save(tmp_path / "c.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 24 * 40 - 1)
    with pytest.raises(ImageError, match=r"c\.png: 40x24 is larger"):
        read_image(tmp_path / "c.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 24 * 40)
    assert read_image(tmp_path / "c.png").shape == (24, 40, 3)


def test_folder_expansion(tmp_path):
    Image.fromarray(scene()).save(tmp_path / "b.png")
    Image.fromarray(scene()).save(tmp_path / "a.JPG")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert expand_image_paths([tmp_path, "x.png"]) == [str(tmp_path / "a.JPG"), str(tmp_path / "b.png"), "x.png"]
    with pytest.raises(ImageError, match=r"sub: folder holds no images"):
        expand_image_paths([tmp_path / "sub"])


# ---------------------------------------------------------------------------------------------
# sparse-rcnn predict


def test_python_api_inputs():
    from sparse_rcnn.data import to_image_tensor

    rgb = scene()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    for x in (rgb, rgba, rgb[..., 0], rgb[..., :1], Image.fromarray(rgb).convert("P")):
        out = to_image_tensor(x)
        assert out.shape == (3, 24, 40) and out.dtype == torch.uint8
    assert torch.equal(to_image_tensor(rgba), to_image_tensor(rgb))
    with pytest.raises(ValueError, match=r"uint8 \(0-255\) array, got float32; for 0-1 floats"):
        to_image_tensor(rgb.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB array, got shape \(24, 40, 2\)"):
        to_image_tensor(rgb[..., :2])
    with pytest.raises(ValueError, match=r"\(3, H, W\) tensor, got shape \(24, 40, 3\)"):
        to_image_tensor(torch.from_numpy(rgb))
    with pytest.raises(ValueError, match="empty image"):
        to_image_tensor(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(TypeError, match="cannot use bytes as an image"):
        to_image_tensor(b"\x89PNG")
