"""Copying a source image into a dataset: checked from its header, copied byte for byte.

Converters never re-encode: the original bytes are lossless, fast to copy and identical on every
run. The written file's extension follows the bytes' real format, so an NLVR2 ``.png`` that holds
JPEG data is written as ``.jpg`` (and the validator's extension check stays quiet).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from phi3v_data.converters.base import ImageFile
from phi3v_data.images import EXTENSIONS_BY_FORMAT, probe_image
from phi3v_data.problems import Fault

# The extension a file gets when its own does not match its format.
CANONICAL_EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


@dataclass(frozen=True, slots=True)
class UnusableImage:
    """A source image that cannot go into the dataset: its path under the input folder, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def copy_image(input_dir: Path, source: str, target_stem: str) -> ImageFile | UnusableImage:
    """The image at ``input_dir/source`` as a file to write at ``target_stem`` plus its format's extension.

    ``source`` is a relative POSIX path; ``target_stem`` is relative to the dataset's images root,
    e.g. ``train/xnbl0037_1``.
    """
    path = input_dir / source
    info = probe_image(path)
    if isinstance(info, Fault):
        return UnusableImage(source, f"{info.message} ({info.code})")
    try:
        data = path.read_bytes()
    except OSError as error:
        return UnusableImage(source, f"cannot read it: {error.strerror} (image-unreadable)")
    return ImageFile(target_stem + output_extension(source, info.format), data)


def output_extension(source: str, image_format: str) -> str:
    """The source's own extension (lower-cased) when it names its format, else the format's usual one."""
    suffix = PurePosixPath(source).suffix.lower()
    return suffix if suffix in EXTENSIONS_BY_FORMAT[image_format] else CANONICAL_EXTENSIONS[image_format]
