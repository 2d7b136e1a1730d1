"""``manifest.json``: what a dataset folder holds, and proof that it was validated.

A converter writes it last; ``phi3v-data validate DIR --write-manifest`` writes one for a dataset
made by hand. The trainer accepts a dataset only when every JSONL file in the folder is listed with
its current sha256, so a file edited after validation is never trained on unchecked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phi3v_data.atomic import atomic_write_text
from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.format import FORMAT_VERSION

MANIFEST_NAME = "manifest.json"
KNOWN_SPLITS = frozenset({"train", "val", "test"})
# Image checks that open the files: a manifest certifies a dataset only after one of them.
CERTIFYING_IMAGE_MODES = frozenset({"header", "decode"})
_HASH_BLOCK = 1 << 20


class _ManifestModel(BaseModel):
    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class SplitEntry(_ManifestModel):
    """One JSONL file of the dataset."""

    file: str
    """The file's name, relative to the dataset folder."""
    records: int
    """How many records it holds."""
    sha256: str
    """The sha256 of its bytes when it was validated."""


class Rejection(_ManifestModel):
    """An input the converter could not turn into a record, and why."""

    input: str
    reason: str


class ConverterInfo(_ManifestModel):
    name: str
    options: dict[str, Any] = {}


class Manifest(_ManifestModel):
    """The contents of ``manifest.json``."""

    format_version: str = FORMAT_VERSION
    converter: ConverterInfo | None = None
    """The converter and options that made the dataset; absent for a dataset made by hand."""
    splits: dict[str, SplitEntry] = Field(default_factory=dict)
    """The dataset's JSONL files by split name (train, val, test, or the file's stem)."""
    rejected: list[Rejection] = []
    counts: dict[str, int] = {}
    """Other counts worth keeping: ignored non-data files, skipped unlabelled items, ..."""
    validation: dict[str, Any] | None = None
    """The summary of the validation that accepted the dataset."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def split_names(files: Sequence[Path]) -> dict[str, Path]:
    """The split name of each JSONL file of one dataset folder, as the manifest lists them.

    ``ucf101_train.jsonl`` is ``train`` when every file ends in a distinct ``_train``/``_val``/``_test``;
    otherwise every file is named by its stem, which is unique within a folder, so no file is lost.
    """
    suffixes = [file.stem.rsplit("_", 1)[-1] for file in files]
    if len(set(suffixes)) == len(suffixes) and KNOWN_SPLITS.issuperset(suffixes):
        return dict(zip(suffixes, files))
    return {file.stem: file for file in files}


def split_entry(path: Path, records: int) -> SplitEntry:
    """A manifest entry for a finished JSONL file."""
    return SplitEntry(file=path.name, records=records, sha256=sha256_file(path))


def write_manifest(dataset_dir: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically; returns its path."""
    path = Path(dataset_dir) / MANIFEST_NAME
    atomic_write_text(path, manifest.model_dump_json(indent=2, exclude_none=True) + "\n")
    return path


def read_manifest(dataset_dir: str | os.PathLike[str]) -> Manifest:
    """Read a dataset's manifest, or raise :class:`UnvalidatedDatasetError` saying what to run."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise UnvalidatedDatasetError(
            f"{dataset_dir} has no {MANIFEST_NAME}: validate it first with "
            f"`phi3v-data validate {dataset_dir} --write-manifest`"
        )
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise UnvalidatedDatasetError(
            f"{path} is not a phi3v-data manifest ({error.error_count()} problem(s)); rewrite it with "
            f"`phi3v-data validate {dataset_dir} --write-manifest`"
        ) from None


def manifest_mismatches(dataset_dir: str | os.PathLike[str], manifest: Manifest) -> list[str]:
    """Every way the folder's JSONL files differ from the manifest (empty when they match)."""
    folder = Path(dataset_dir)
    listed = {entry.file: entry for entry in manifest.splits.values()}
    present = {path.name for path in folder.glob("*.jsonl")}
    mismatches = [f"{name} is not listed in the manifest" for name in sorted(present - listed.keys())]
    for name, entry in sorted(listed.items()):
        if name not in present:
            mismatches.append(f"{name} is listed in the manifest but missing")
        elif sha256_file(folder / name) != entry.sha256:
            mismatches.append(f"{name} changed since it was validated (sha256 differs)")
    return mismatches


def require_validated(dataset_dir: str | os.PathLike[str]) -> Manifest:
    """The manifest of a dataset whose files match it; raises with the command to run otherwise."""
    manifest = read_manifest(dataset_dir)
    command = f"`phi3v-data validate {dataset_dir} --write-manifest` (or pass --validate to the trainer)"
    validation = manifest.validation or {}
    images_mode = (validation.get("options") or {}).get("images")
    if not validation.get("ok") or images_mode not in CERTIFYING_IMAGE_MODES:
        raise UnvalidatedDatasetError(
            f"{dataset_dir}/{MANIFEST_NAME} does not record a passing validation that opened the images "
            f"(images checked: {images_mode or 'never'}). Validate it with {command}"
        )
    mismatches = manifest_mismatches(dataset_dir, manifest)
    if mismatches:
        raise UnvalidatedDatasetError(
            f"{dataset_dir} does not match its {MANIFEST_NAME}: {'; '.join(mismatches)}. Validate it again with {command}"
        )
    return manifest
