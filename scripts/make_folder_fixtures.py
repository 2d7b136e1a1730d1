"""Generate the tiny raw trees of the ``folder`` source under ``fixtures/folder/``.

Run once by a developer; the output is committed and tests never regenerate it:

    /work/venv/bin/python scripts/make_folder_fixtures.py

What it writes (every image 8x6, a flat colour per file so that no two files are equal):

- ``classes/``: ``<class>/<images>`` without split folders. Extensions in several cases and
  formats, an image one folder deeper than its class, a PNG named ``.jpg``, and what the converter
  must set aside: a README, a ``.DS_Store``, a text file (ignored); an image outside any class
  folder, a truncated JPEG, and ``twin.jpg`` next to ``twin.PNG`` (rejected).
- ``splits/``: ``{train,val,test}/<class>/<images>``, clean.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "folder"
SIZE = (8, 6)


def image_bytes(image_format: str, number: int) -> bytes:
    colour = ((number * 53) % 256, (number * 97) % 256, (number * 151) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", SIZE, colour).save(buffer, format=image_format)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_classes_tree(root: Path) -> None:
    images = {
        "cat/a.jpg": "JPEG",
        "cat/b.JPEG": "JPEG",
        "cat/c.png": "PNG",
        "cat/indoor/d.webp": "WEBP",
        "cat/twin.jpg": "JPEG",
        "cat/twin.PNG": "PNG",
        "dog/e.jpg": "JPEG",
        "dog/f.bmp": "BMP",
        "dog/g.gif": "GIF",
        "dog/h.jpg": "PNG",  # PNG bytes behind a .jpg name: written as h.png
        "stray.jpg": "JPEG",  # no class folder
    }
    for number, (relative, image_format) in enumerate(images.items()):
        write(root / relative, image_bytes(image_format, number))
    whole = image_bytes("JPEG", 99)
    write(root / "dog/truncated.jpg", whole[: len(whole) // 2])
    write(root / "README.md", b"# Pets\nTwo classes.\n")
    write(root / "cat/.DS_Store", b"\x00\x00\x00\x01Bud1")
    write(root / "dog/notes.txt", b"dogs photographed in 2024\n")


def make_splits_tree(root: Path) -> None:
    images = [
        "train/cat/a.jpg",
        "train/cat/b.jpg",
        "train/dog/c.png",
        "train/dog/d.png",
        "val/cat/e.jpg",
        "val/dog/f.png",
        "test/cat/g.jpg",
        "test/dog/h.png",
    ]
    for number, relative in enumerate(images):
        write(root / relative, image_bytes("PNG" if relative.endswith(".png") else "JPEG", 20 + number))


def main() -> int:
    shutil.rmtree(ROOT, ignore_errors=True)
    make_classes_tree(ROOT / "classes")
    make_splits_tree(ROOT / "splits")
    print(f"wrote {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
