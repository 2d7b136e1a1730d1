"""The header-only probe and the trainer's loader, on images made with Pillow at test time."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from phi3v_data.images import ImageInfo, extension_mismatch, load_image, probe_image
from phi3v_data.problems import Fault


def save(path: Path, image: Image.Image, image_format: str, **options: object) -> Path:
    image.save(path, image_format, **options)
    return path


def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose header claims any size, with a few bytes of pixel data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "image", "image_format", "mode"),
    [
        ("cmyk.jpg", Image.new("CMYK", (30, 20), (0, 50, 100, 0)), "JPEG", "CMYK"),
        ("gray16.png", Image.new("I;16", (30, 20), 50000), "PNG", "I;16"),
        ("palette.png", Image.new("RGB", (30, 20), (1, 2, 3)).convert("P"), "PNG", "P"),
        ("rgba.png", Image.new("RGBA", (30, 20), (1, 2, 3, 4)), "PNG", "RGBA"),
    ],
)
def test_modes_the_loader_converts_are_valid(
    tmp_path: Path, name: str, image: Image.Image, image_format: str, mode: str
) -> None:
    path = save(tmp_path / name, image, image_format)
    info = probe_image(path)
    assert info == ImageInfo(image_format, 30, 20, mode)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (30, 20)


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path: Path) -> None:
    path = save(tmp_path / "gray16.png", Image.new("I;16", (4, 4), 32896), "PNG")
    assert load_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_exif_rotation_swaps_the_display_size_and_the_loader_applies_it(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path / "rotated.jpg", Image.new("RGB", (40, 20)), "JPEG", exif=exif.tobytes())
    info = probe_image(path)
    assert isinstance(info, ImageInfo)
    assert (info.width, info.height, info.orientation) == (40, 20, 6)
    assert info.display_size == (20, 40)
    assert load_image(path).size == (20, 40)


def test_a_jpeg_without_its_end_marker_is_truncated(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[:-200])
    fault = probe_image(path)
    assert isinstance(fault, Fault) and fault.code == "image-truncated"


def test_a_png_without_iend_is_truncated(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", Image.new("RGB", (8, 8)), "PNG")
    path.write_bytes(path.read_bytes()[:-12])  # the IEND chunk is the last 12 bytes
    fault = probe_image(path)
    assert isinstance(fault, Fault) and fault.code == "image-truncated"


def test_a_tiff_cut_inside_its_pixel_strips_is_truncated(tmp_path: Path) -> None:
    path = save(tmp_path / "a.tiff", Image.new("RGB", (300, 200)), "TIFF")
    assert isinstance(probe_image(path), ImageInfo)
    path.write_bytes(path.read_bytes()[:-1000])
    fault = probe_image(path)
    assert isinstance(fault, Fault) and fault.code == "image-truncated"


def test_a_30000_square_png_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(crafted_png(30000, 30000))
    assert path.stat().st_size < 200  # nothing to allocate: the header alone condemns it
    fault = probe_image(path)
    assert isinstance(fault, Fault) and fault.code == "image-too-large"


def test_the_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", Image.new("RGB", (100, 100)), "PNG")
    assert isinstance(probe_image(path, max_pixels=10_000), ImageInfo)
    fault = probe_image(path, max_pixels=9_999)
    assert isinstance(fault, Fault) and fault.code == "image-too-large"


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda folder: folder / "absent.jpg", "image-missing"),
        (lambda folder: folder, "image-not-file"),
        (lambda folder: (folder / "t.jpg", (folder / "t.jpg").write_text("not an image"))[0], "image-unreadable"),
        (lambda folder: (folder / "z.png", (folder / "z.png").write_bytes(crafted_png(0, 5)))[0], "image-unreadable"),
    ],
)
def test_files_that_are_not_images(tmp_path: Path, setup, code: str) -> None:  # type: ignore[no-untyped-def]
    fault = probe_image(setup(tmp_path))
    assert isinstance(fault, Fault) and fault.code == code


def test_extension_mismatch_is_reported_and_matching_names_are_not(tmp_path: Path) -> None:
    png_named_jpg = save(tmp_path / "photo.jpg", Image.new("RGB", (4, 4)), "PNG")
    info = probe_image(png_named_jpg)
    assert isinstance(info, ImageInfo)
    mismatch = extension_mismatch(png_named_jpg, info)
    assert mismatch is not None and mismatch.code == "image-extension-mismatch"
    assert extension_mismatch(tmp_path / "photo.PNG", info) is None
