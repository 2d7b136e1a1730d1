"""Write the binary and byte-exact files of the example cases (images, odd JSONL bytes).

The hand-written JSONL files and ``expected.json`` of each case are committed as they are; this
script makes what a text editor cannot: images of every kind (tiny, so the repository stays small),
broken images, and JSONL files with a byte-order mark, CRLF line ends or invalid UTF-8. Run it from
the repository root after changing a case; its output is committed::

    python tests/example-files/make_files.py
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
POSITIVE = HERE / "positive"
NEGATIVE = HERE / "negative"

UCF_FRAMES = [f"v_BabyCrawling_g21_c04.{index}.jpg" for index in range(8)] + [
    f"v_BabyCrawling_g09_c06.{index}.jpg" for index in range(8)
]


def jpeg(size: tuple[int, int] = (32, 24), mode: str = "RGB", color: object = (200, 120, 40), **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "JPEG", quality=80, **save)
    return buffer.getvalue()


def encoded(image: Image.Image, image_format: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(width: int, height: int, idat: bytes, *, with_end: bool = True) -> bytes:
    """A grayscale PNG whose header claims any size, with the IDAT given: bombs and broken data."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", idat) + (png_chunk(b"IEND", b"") if with_end else b"")


def exif_rotated_jpeg() -> bytes:
    """A 40x20 JPEG whose EXIF orientation 6 tells viewers (and the trainer) to show it 20x40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg((40, 20), exif=exif.tobytes())


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def symlink(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    os.symlink(target, path)


def positive_cases() -> None:
    frames = POSITIVE / "cookbook-ucf101" / "images" / "val" / "BabyCrawling"
    for index, name in enumerate(UCF_FRAMES):
        write(frames / name, jpeg(color=(20 * index, 100, 200 - 10 * index)))

    kinds = POSITIVE / "image-kinds" / "images"
    write(kinds / "cmyk.jpg", jpeg(mode="CMYK", color=(0, 100, 200, 0)))
    write(kinds / "gray16.png", encoded(Image.new("I;16", (24, 16), 40000), "PNG"))
    write(kinds / "palette.png", encoded(Image.new("RGB", (24, 16), (0, 128, 255)).convert("P"), "PNG"))
    write(kinds / "rgba.png", encoded(Image.new("RGBA", (24, 16), (0, 128, 255, 100)), "PNG"))
    write(kinds / "exif-rotated.jpg", exif_rotated_jpeg())
    write(kinds / "gray.gif", encoded(Image.new("L", (24, 16), 90), "GIF"))
    write(kinds / "photo.webp", encoded(Image.new("RGB", (24, 16), (9, 9, 9)), "WEBP"))
    write(kinds / "bitmap.bmp", encoded(Image.new("RGB", (24, 16), (9, 90, 9)), "BMP"))
    write(kinds / "scan.tiff", encoded(Image.new("RGB", (24, 16), (90, 9, 9)), "TIFF"))

    write(POSITIVE / "placeholders" / "images" / "a.jpg", jpeg())
    write(POSITIVE / "placeholders" / "images" / "b.jpg", jpeg((24, 32)))
    write(POSITIVE / "placeholders" / "images" / "c.jpg", jpeg((50, 50)))

    record = b'{"id": "r1", "source": "bytes", "conversations": [{"user": "Hi", "assistant": "Hello"}]}'
    second = record.replace(b'"r1"', b'"r2"')
    write(POSITIVE / "line-endings" / "data.jsonl", b"\xef\xbb\xbf" + record + b"\r\n" + second + b"\r\n\r\n\n")

    warnings = POSITIVE / "warnings" / "images"
    write(warnings / "real.jpg", jpeg())
    write(warnings / "png-inside.jpg", encoded(Image.new("RGB", (16, 16)), "PNG"))
    symlink(warnings / "sub" / "alias.jpg", "../real.jpg")

    write(POSITIVE / "split-leakage" / "images" / "shared.jpg", jpeg())
    write(POSITIVE / "split-leakage" / "images" / "train-only.jpg", jpeg())


def negative_cases() -> None:
    valid = b'{"id": "%s", "source": "bytes", "conversations": [{"user": "Hi", "assistant": "Hello"}]}'
    lines = [
        valid % b"ok-1",
        b'{"id": "latin1", "source": "caf\xe9", "conversations": []}',
        b'{"id": "comma", "source": "s", "conversations": [],}',
        b'{"id": "nan", "source": "s", "conversations": [{"user": "x", "assistant": "y"}], "meta": {"score": NaN}}',
        b'[{"id": "array"}]',
        b"",
        b'"just a string"',
        b'{"source": "s", "conversations": [{"user": "x", "assistant": "y"}]}',
        b'{"id": "empty-user", "source": "s", "conversations": [{"user": "", "assistant": "y"}]}',
        b'{"id": "no-turns", "source": "s", "conversations": []}',
        b'{"id": 42, "source": "s", "conversations": [{"user": "x", "assistant": "y"}]}',
        b'{"id": "surrogate", "source": "s", "conversations": [{"user": "\\ud800", "assistant": "y"}]}',
        b'{"id": "images-string", "source": "s", "conversations": [{"images": "a", "user": "x", "assistant": "y"}]}',
        b'{"id": "blank-answer", "source": "s", "conversations": [{"user": "x", "assistant": "  "}]}',
        b'{"id": "infinity", "source": "s", "conversations": [{"user": "x", "assistant": "y"}], "meta": [Infinity]}',
        valid % b"ok-2",
    ]
    write(NEGATIVE / "lines" / "data.jsonl", b"\n".join(lines) + b"\n")
    write(NEGATIVE / "empty-file" / "empty.jsonl", b"")

    files = NEGATIVE / "image-files" / "images"
    (files / "folder.jpg").mkdir(parents=True, exist_ok=True)
    write(files / "folder.jpg" / ".keep", b"")
    write(files / "text.jpg", b"this is not an image\n")
    write(files / "bomb.png", crafted_png(30000, 30000, zlib.compress(b"\x00" * 64)))
    write(files / "truncated.jpg", jpeg((64, 48))[:-300])
    write(files / "no-iend.png", crafted_png(4, 4, zlib.compress(b"\x00" * 20), with_end=False))
    write(files / "zero-width.png", crafted_png(0, 4, zlib.compress(b"\x00" * 4)))
    write(files / "fine.jpg", jpeg())

    paths = NEGATIVE / "image-paths"
    write(paths / "outside.jpg", jpeg())
    write(paths / "images" / "inside.jpg", jpeg())
    symlink(paths / "images" / "escape.jpg", "../outside.jpg")

    write(NEGATIVE / "decode" / "images" / "broken-pixels.png", crafted_png(4, 4, b"this is not zlib data"))
    write(NEGATIVE / "decode" / "images" / "fine.png", encoded(Image.new("RGB", (8, 8)), "PNG"))

    write(NEGATIVE / "placeholders" / "images" / "a.jpg", jpeg())
    write(NEGATIVE / "placeholders" / "images" / "b.jpg", jpeg())


if __name__ == "__main__":
    positive_cases()
    negative_cases()
