"""Reading images: a header-only probe for the validator, and the loader the trainer uses.

``probe_image`` never decodes pixels: it reads the header (format, size, mode, EXIF orientation) and
checks the file's tail for the format's end marker, so a truncated download is caught at header
speed. ``load_image`` is the one loader for pixels: ``validate --images decode`` and the trainer's
dataset both call it, so what validates is what trains.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from phi3v_data.problems import Fault

# Formats the trainer's loader (Pillow) decodes. MPO is the multi-picture JPEG many phones write.
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF"})

EXTENSIONS_BY_FORMAT = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "MPO": {".jpg", ".jpeg", ".mpo"},
    "PNG": {".png"},
    "GIF": {".gif"},
    "WEBP": {".webp"},
    "BMP": {".bmp", ".dib"},
    "TIFF": {".tif", ".tiff"},
}

DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485

_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_TAIL_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header says about an image file."""

    format: str
    width: int
    height: int
    mode: str
    orientation: int = 1

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height after the EXIF rotation the loader applies: the size the model sees."""
        if self.orientation in _TRANSPOSING_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height


def file_fault(path: str | os.PathLike[str]) -> Fault | None:
    """Why there is no regular file at ``path`` (symlinks followed), or None when there is one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Fault("image-missing", "no such file")
    except OSError as error:
        return Fault("image-unreadable", f"cannot stat the file: {error.strerror}")
    return None if stat.S_ISREG(mode) else Fault("image-not-file", "not a regular file")


def probe_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo | Fault:
    """Check an image file from its header and tail, without decoding its pixels."""
    fault = file_fault(path)
    if fault:
        return fault
    try:
        file = open(path, "rb")  # one open for both the header and the tail check
    except OSError as error:
        return Fault("image-unreadable", f"cannot open the file: {error.strerror}")
    with file:
        return _probe_file(file, max_pixels)


def _probe_file(file: BinaryIO, max_pixels: int) -> ImageInfo | Fault:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and corrupt-EXIF warnings: the outcome is reported instead
            with Image.open(file) as image:
                info = ImageInfo(image.format or "", image.width, image.height, image.mode, _orientation(image))
                tiff_data_end = _tiff_data_end(image) if info.format == "TIFF" else 0
    except Image.DecompressionBombError as error:
        # Pillow refuses these in Image.open whatever --max-pixels says, so the trainer could not load it.
        return Fault("image-too-large", f"{str(error).rstrip('.')}; Pillow (and so the trainer) will not open it")
    except UnidentifiedImageError:
        return Fault("image-unreadable", f"not an image Pillow recognises (supported: {_supported()})")
    except (SyntaxError, ValueError, OSError) as error:
        if "truncated" in str(error).lower():
            return Fault("image-truncated", f"the header is cut short ({error}): re-download or re-export it")
        return Fault("image-unreadable", f"not a readable image: {error}")
    if info.format not in SUPPORTED_FORMATS:
        return Fault("image-unreadable", f"{info.format} is not a supported format ({_supported()})")
    if info.width <= 0 or info.height <= 0:
        return Fault("image-zero-size", f"size is {info.width}x{info.height}")
    if info.width * info.height > max_pixels:
        return Fault(
            "image-too-large",
            f"{info.width}x{info.height} = {info.width * info.height} pixels is over the limit of {max_pixels}",
        )
    missing_end = _missing_end_marker(file, info.format, tiff_data_end)
    if missing_end:
        return Fault("image-truncated", f"the file ends before its {missing_end}: re-download or re-export it")
    return info


def extension_mismatch(path: str | os.PathLike[str], info: ImageInfo) -> Fault | None:
    """A warning when the file's format does not match its extension (e.g. JPEG bytes in a .png)."""
    suffix = os.path.splitext(path)[1].lower()  # not pathlib: this runs once per image file
    if suffix in EXTENSIONS_BY_FORMAT.get(info.format, ()):
        return None
    named = f"named {suffix}" if suffix else "named without an extension"
    return Fault("image-extension-mismatch", f"the file holds {info.format} data but is {named}")


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image the way training sees it: EXIF rotation applied, 8-bit RGB.

    Raises ``OSError`` (or a Pillow subclass) when the pixels do not decode.
    """
    with Image.open(path) as image:
        image.load()
        # In place, and no conversion of an image that is already RGB: a 1700x2200 page otherwise
        # costs two extra full copies, about as long as the processor's own work on it.
        ImageOps.exif_transpose(image, in_place=True)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            # Pillow's RGB conversion clips 16-bit values at 255; scale them down instead.
            return image.point(lambda value: value / 257).convert("L").convert("RGB")
        if image.mode == "F":
            return image.convert("L").convert("RGB")
        return image if image.mode == "RGB" else image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block does not stop training: exif_transpose ignores it too
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _tiff_data_end(image: Image.Image) -> int:
    """Where the first page's pixel data ends, from its strip (or tile) offsets and byte counts."""
    tags = getattr(image, "tag_v2", {})
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):  # StripOffsets/ByteCounts, TileOffsets/ByteCounts
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets and counts:
            offsets = offsets if isinstance(offsets, tuple) else (offsets,)
            counts = counts if isinstance(counts, tuple) else (counts,)
            return max(offset + count for offset, count in zip(offsets, counts))
    return 0


def _missing_end_marker(file: BinaryIO, image_format: str, tiff_data_end: int = 0) -> str | None:
    """The name of the end marker the file lacks, or None when its tail looks complete."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - _TAIL_BYTES))
    tail = file.read()
    file.seek(0)
    head = file.read(16)
    # Some writers pad files with zeros or append a few bytes after the end marker: both decode fine.
    trimmed = tail.rstrip(b"\x00")
    if image_format in ("JPEG", "MPO"):
        return None if b"\xff\xd9" in trimmed[-_TAIL_BYTES:] else "JPEG end-of-image marker (FFD9)"
    if image_format == "PNG":
        return None if b"IEND" in trimmed else "PNG IEND chunk"
    if image_format == "GIF":
        return None if trimmed.endswith(b";") else "GIF trailer"
    if image_format == "WEBP":
        declared = int.from_bytes(head[4:8], "little") + 8
        return None if size >= declared else "declared RIFF length"
    if image_format == "BMP":
        declared = int.from_bytes(head[2:6], "little")
        return None if size >= declared else "declared file length"
    if image_format == "TIFF":
        return None if size >= tiff_data_end else "last strip of pixel data"
    return None


def _supported() -> str:
    return ", ".join(sorted(SUPPORTED_FORMATS))
