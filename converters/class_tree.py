"""Class-folder trees: ``<root>/<class>/<files>`` or ``<root>/<split>/<class>/<files>``.

The layout of ``folder`` and of the cookbook's UCF-101 subset: the label of a file is the name of
the class folder it sits in (at any depth below it), and a top-level ``train``/``val``/``test``
folder names its split. A root mixing split folders with other folders is ambiguous and refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from phi3v_data.converters._inputs import FolderListing, list_folder
from phi3v_data.converters.base import SPLITS
from phi3v_data.errors import InputLayoutError


@dataclass(frozen=True, slots=True)
class ClassFile:
    """A data file of the tree, as POSIX paths relative to the root."""

    path: str
    split: str | None
    """The split folder it sits in; None in a tree without split folders."""
    label: str
    inner: str
    """Its path below the class folder, e.g. ``clip.avi`` or ``2019/clip.avi``."""

    def output_stem(self, split: str) -> str:
        """Where its output goes, without extension: ``<split>/<label>/<inner without suffix>``."""
        return f"{split}/{self.label}/{PurePosixPath(self.inner).with_suffix('').as_posix()}"


@dataclass(frozen=True, slots=True)
class ClassTree:
    files: list[ClassFile]
    """The data files inside class folders, sorted by path."""
    misplaced: list[str]
    """Data files outside any class folder (no label), sorted."""
    has_splits: bool
    listing: FolderListing

    @property
    def classes(self) -> list[str]:
        return sorted({file.label for file in self.files})

    @property
    def data_files(self) -> set[str]:
        """Every file with a data extension, labelled or not: the rest of the listing is ignored."""
        return {file.path for file in self.files} | set(self.misplaced)


def scan_class_tree(root: Path, extensions: frozenset[str]) -> ClassTree:
    """The files under ``root`` whose lower-cased suffix is in ``extensions``, with their labels."""
    listing = list_folder(root)
    top_folders = sorted(folder for folder in listing.folders if "/" not in folder)
    split_folders = [folder for folder in top_folders if folder in SPLITS]
    if split_folders and split_folders != top_folders:
        others = ", ".join(folder for folder in top_folders if folder not in SPLITS)
        raise InputLayoutError(
            f"{root} mixes split folders ({', '.join(split_folders)}) with other folders ({others}); expected either "
            "<root>/<class>/<files> or <root>/<split>/<class>/<files> with splits named train, val, test"
        )
    has_splits = bool(split_folders)
    depth = 2 if has_splits else 1  # folders above the file: [split,] class
    files, misplaced = [], []
    for path in sorted(listing.files):
        if PurePosixPath(path).suffix.lower() not in extensions:
            continue
        parts = path.split("/")
        if len(parts) <= depth:
            misplaced.append(path)
            continue
        split = parts[0] if has_splits else None
        files.append(ClassFile(path, split, parts[depth - 1], "/".join(parts[depth:])))
    return ClassTree(files, misplaced, has_splits, listing)
