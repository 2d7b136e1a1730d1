"""Image path rules: relative POSIX paths that stay inside the dataset's images root."""

from __future__ import annotations

import os
import re
from pathlib import Path

from phi3v_data.problems import Fault

# The images root of a dataset folder: record paths are relative to DIR/images unless told otherwise.
IMAGES_DIR = "images"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def path_fault(relative: str) -> Fault | None:
    """What is wrong with an image path as written, before touching the file system."""
    if "\\" in relative:
        return Fault("image-path-backslash", f"{relative!r} uses a backslash; write it with '/' separators")
    if relative.startswith("/") or _WINDOWS_DRIVE.match(relative):
        return Fault("image-path-absolute", f"{relative!r} is absolute; write it relative to the images root")
    if "\x00" in relative:
        return Fault("image-path-nul", f"{relative!r} holds a NUL character; no file can have that name")
    if ".." in relative.split("/"):
        return Fault("image-path-parent", f"{relative!r} has a '..' segment; paths must stay inside the images root")
    return None


def resolve_inside(root: Path, relative: str) -> Path | Fault:
    """The file an image path names, symlinks followed, or a fault if it leaves ``root``.

    ``root`` must already be resolved (``Path.resolve()``); the caller resolves it once per dataset.
    """
    fault = path_fault(relative)
    if fault:
        return fault
    resolved = Path(os.path.realpath(root / relative))
    if resolved != root and root not in resolved.parents:
        return Fault(
            "image-path-outside-root", f"{relative!r} resolves to {resolved}, outside the images root {root}"
        )
    return resolved
