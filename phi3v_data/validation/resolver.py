"""Resolving image paths inside an images root, fast: each folder once, then one ``lstat`` per image.

:func:`phi3v_data.paths.resolve_inside` follows symlinks with ``os.path.realpath``, which checks
every component of the path: a dozen system calls per image on a deep tree. Frames of a dataset
share a few folders, so :class:`RootResolver` resolves each folder once and then only asks whether
the file itself is a symlink. ``realpath(folder/name)`` is ``realpath(realpath(folder)/name)``,
and for a name that is not a symlink that is ``realpath(folder)/name``: the answers are the same.
Anything unusual (a symlinked file, a name that is ``.`` or empty) takes ``resolve_inside`` itself.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from phi3v_data.paths import path_fault, resolve_inside
from phi3v_data.problems import Fault

_FOLDER_CACHE_SIZE = 1 << 14


class RootResolver:
    """``resolve_inside`` for the paths of one images root, returning the file's path as a string."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        self._inside_prefix = os.path.join(self._root, "")
        self._real_folder = functools.lru_cache(maxsize=_FOLDER_CACHE_SIZE)(os.path.realpath)

    def resolve(self, relative: str) -> str | Fault:
        """The real path of the file ``relative`` names, or why it cannot be used."""
        fault = path_fault(relative)
        if fault:
            return fault
        folder, _, name = relative.rpartition("/")
        if name in ("", "."):
            return self._resolve_slowly(relative)
        real_folder = self._real_folder(os.path.join(self._root, folder)) if folder else self._root
        candidate = os.path.join(real_folder, name)
        try:
            is_symlink = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except OSError:  # nothing there (or unreadable): nothing to follow, the probe will say what
            is_symlink = False
        if is_symlink or not (real_folder == self._root or real_folder.startswith(self._inside_prefix)):
            return self._resolve_slowly(relative)
        return candidate

    def _resolve_slowly(self, relative: str) -> str | Fault:
        resolved = resolve_inside(self.root, relative)
        return resolved if isinstance(resolved, Fault) else str(resolved)
