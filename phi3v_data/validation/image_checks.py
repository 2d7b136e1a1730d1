"""The checks one image reference gets, by ``--images`` mode, each file checked once per process.

- ``none``: the path as written (POSIX separators, relative, no ``..``); no file is touched.
- ``exists``: also resolves it (symlinks followed) inside the images root and requires a regular file.
- ``header``: also reads the header and tail (:func:`phi3v_data.images.probe_image`): format, size,
  pixel limit, truncation, extension.
- ``decode``: also decodes the pixels with the trainer's loader (:func:`phi3v_data.images.load_image`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from phi3v_data.images import DEFAULT_MAX_PIXELS, ImageInfo, extension_mismatch, file_fault, load_image, probe_image
from phi3v_data.paths import path_fault
from phi3v_data.problems import Fault
from phi3v_data.validation.resolver import RootResolver

ImagesMode = Literal["decode", "header", "exists", "none"]
IMAGES_MODES: tuple[str, ...] = get_args(ImagesMode)

# Results kept per process. Records that share an image are usually close together in a file, so a
# bounded cache catches the repeats while memory stays flat however many images a dataset has.
_CACHE_SIZE = 1 << 16


class ImageOutcome(NamedTuple):
    """What checking one image found: its faults (errors and warnings) and, if read, its display size."""

    faults: tuple[Fault, ...]
    size: tuple[int, int] | None


class ImageChecker:
    """Checks image references against one ``--images`` mode and pixel limit."""

    def __init__(self, mode: ImagesMode, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if mode not in IMAGES_MODES:
            raise ValueError(f"images mode must be one of {', '.join(IMAGES_MODES)}, got {mode!r}")
        self.mode = mode
        self.max_pixels = max_pixels
        self._check_file = functools.lru_cache(maxsize=_CACHE_SIZE)(self._check_file_uncached)
        self._resolvers: dict[Path, RootResolver] = {}

    def check(self, root: Path, relative: str) -> ImageOutcome:
        """Check the image a record names as ``relative``; ``root`` is the resolved images root."""
        if self.mode == "none":
            fault = path_fault(relative)
            return ImageOutcome((fault,) if fault else (), None)
        resolver = self._resolvers.get(root) or self._resolvers.setdefault(root, RootResolver(root))
        resolved = resolver.resolve(relative)
        if not isinstance(resolved, str):
            return ImageOutcome((resolved,), None)
        faults, size = self._check_file(resolved)
        # The cache keeps messages without the path as written, which may differ between records.
        return ImageOutcome(tuple(Fault(code, f"{relative!r}: {message}") for code, message in faults), size)

    def _check_file_uncached(self, path: str) -> ImageOutcome:
        if self.mode == "exists":
            fault = file_fault(path)
            return ImageOutcome((fault,) if fault else (), None)
        probed = probe_image(path, self.max_pixels)
        if not isinstance(probed, ImageInfo):
            return ImageOutcome((probed,), None)
        faults = []
        mismatch = extension_mismatch(path, probed)
        if mismatch:
            faults.append(mismatch)
        if self.mode == "decode":
            failure = _decode_failure(path)
            if failure:
                faults.append(failure)
        return ImageOutcome(tuple(faults), probed.display_size)


def _decode_failure(path: str) -> Fault | None:
    try:
        load_image(path)
    # Pillow's decoders raise a zoo of types on corrupt data (OSError, SyntaxError, ValueError,
    # struct.error, IndexError, ...); whichever it is, the image cannot be trained on.
    except Exception as error:  # noqa: BLE001
        return Fault("image-decode-failed", f"the pixels do not decode ({type(error).__name__}: {error})")
    return None
