"""What to validate: the JSONL files named on the command line, grouped into datasets.

A PATH is a JSONL file (its images under ``images/`` beside it) or a dataset folder (every
``*.jsonl`` directly inside, images under ``PATH/images``). Files that share an images root form one
dataset: ids must be unique across its files, and an image used by two of them is a split leak.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phi3v_data.errors import FileNotFoundPhi3vDataError, InputLayoutError
from phi3v_data.paths import IMAGES_DIR


@dataclass(frozen=True, slots=True)
class InputFile:
    """One JSONL file, named as the user will recognise it in reports."""

    path: Path
    display_name: str


@dataclass(slots=True)
class Dataset:
    """JSONL files sharing one images root (resolved, symlinks followed)."""

    images_root: Path
    files: list[InputFile] = field(default_factory=list)


def discover(paths: Sequence[str | os.PathLike[str]], images_root: str | os.PathLike[str] | None) -> list[Dataset]:
    """The datasets the paths name, in the order given; raises for a path that cannot be validated."""
    if not paths:
        raise InputLayoutError("no input given: name one or more .jsonl files or dataset folders")
    datasets: dict[Path, Dataset] = {}
    seen: set[Path] = set()
    for given in paths:
        folder, files = _jsonl_files(Path(given))
        root = Path(images_root) if images_root is not None else folder / IMAGES_DIR
        dataset = datasets.setdefault(root.resolve(), Dataset(root.resolve()))
        for file in files:
            if file.path.resolve() not in seen:
                seen.add(file.path.resolve())
                dataset.files.append(file)
    return [dataset for dataset in datasets.values() if dataset.files]


def _jsonl_files(path: Path) -> tuple[Path, list[InputFile]]:
    """The folder whose ``images/`` the files use, and the files."""
    if path.is_dir():
        files = sorted(child for child in path.glob("*.jsonl") if child.is_file())
        if not files:
            raise InputLayoutError(f"{path} holds no .jsonl file: pass a dataset folder or the .jsonl files themselves")
        return path, [InputFile(file, str(file)) for file in files]
    if path.is_file():
        return path.parent, [InputFile(path, str(path))]
    if path.exists():
        raise InputLayoutError(f"{path} is neither a file nor a folder")
    raise FileNotFoundPhi3vDataError(f"{path} does not exist")
