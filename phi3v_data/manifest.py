"""``manifest.json``: what a dataset folder holds, and proof that it was validated.

A converter writes it last; ``phi3v-data validate DIR --write-manifest`` writes one for a dataset
made by hand. The trainer accepts a dataset only when every JSONL file in the folder is listed with
its current sha256, so a file edited after validation is never trained on unchecked, and every image
the files name still has its size and sha256: an image replaced or deleted after validation is refused
before training starts.

Checking the images costs one ``stat`` per image; an image is hashed only when its modification or
status-change time is not older than ``manifest.json`` itself (written after every image), which a
replaced, rewritten or copied file always is. The manifest holds no time, so a conversion writes the
same bytes on every run.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phi3v_data.atomic import atomic_write_text
from phi3v_data.cores import available_cores
from phi3v_data.errors import UnreadableInputError, UnvalidatedDatasetError
from phi3v_data.format import FORMAT_VERSION
from phi3v_data.paths import IMAGES_DIR

MANIFEST_NAME = "manifest.json"
KNOWN_SPLITS = frozenset({"train", "val", "test"})
# Image checks that open the files: a manifest certifies a dataset only after one of them.
CERTIFYING_IMAGE_MODES = frozenset({"header", "decode"})
_HASH_BLOCK = 1 << 20
_IMAGE_PROBLEMS_SHOWN = 5
_T = TypeVar("_T")
_R = TypeVar("_R")


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


class ImageEntry(_ManifestModel):
    """One image file the JSONL files name."""

    size: int
    """Its size in bytes when it was validated."""
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
    images: dict[str, ImageEntry] | None = None
    """Every image file the JSONL files name, by its path under ``images/``, sorted. None in a manifest
    written before phi3v-data recorded images (its images are not checked); ``{}`` for text-only data."""

    @property
    def lengths_num_crops(self) -> int | None:
        """The num_crops the validation counted sequence lengths at; None when it counted none (no model)."""
        options = (self.validation or {}).get("options") or {}
        num_crops = options.get("num_crops")
        return num_crops if options.get("model") is not None and isinstance(num_crops, int) else None


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


def image_entries(
    images_root: Path, paths: Iterable[str], digests: Mapping[str, str] | None = None
) -> dict[str, ImageEntry]:
    """The manifest's ``images``: each distinct path, sorted, with its file's size and sha256.

    ``digests`` are sha256s already known (a converter's, of the bytes it wrote); the others are
    hashed now, in threads. Raises :class:`UnreadableInputError` for a file that cannot be read.
    """
    names = sorted(set(paths))
    known = dict(digests or {})
    unknown = [name for name in names if name not in known]
    try:
        known.update(zip(unknown, _in_threads(sha256_file, [images_root / name for name in unknown])))
        return {name: ImageEntry(size=(images_root / name).stat().st_size, sha256=known[name]) for name in names}
    except OSError as error:
        raise UnreadableInputError(
            f"cannot read {error.filename}: {error.strerror or error}; it changed after validation: validate again"
        ) from None


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


def image_mismatches(dataset_dir: str | os.PathLike[str], manifest: Manifest) -> list[str]:
    """Every image of the manifest that is missing or changed (empty when all match, or none are listed).

    A file of the recorded size is hashed only when its mtime or ctime is not older than the
    manifest's mtime: a file replaced or rewritten since has a newer ctime, whatever its mtime says.
    """
    if manifest.images is None:
        return []
    folder = Path(dataset_dir)
    root = folder / IMAGES_DIR
    written = (folder / MANIFEST_NAME).stat().st_mtime_ns
    found: dict[str, str] = {}
    suspects: list[str] = []
    for name, entry in manifest.images.items():
        try:
            status = os.stat(root / name)
        except FileNotFoundError:
            found[name] = "is missing"
            continue
        except OSError as error:
            found[name] = f"cannot be read ({error.strerror or error})"
            continue
        if not stat.S_ISREG(status.st_mode):
            found[name] = "is not a file"
        elif status.st_size != entry.size:
            found[name] = f"changed since it was validated ({entry.size:,} bytes then, {status.st_size:,} now)"
        elif max(status.st_mtime_ns, status.st_ctime_ns) >= written:
            suspects.append(name)
    for name, digest in zip(suspects, _in_threads(_sha256_or_none, [root / name for name in suspects])):
        if digest is None:
            found[name] = "cannot be read"
        elif digest != manifest.images[name].sha256:
            found[name] = "changed since it was validated (sha256 differs)"
    return [f"{IMAGES_DIR}/{name} {what}" for name, what in sorted(found.items())]


def require_validated(dataset_dir: str | os.PathLike[str]) -> Manifest:
    """The manifest of a dataset whose files and images match it; raises with the command to run otherwise."""
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
    images = image_mismatches(dataset_dir, manifest)
    mismatches += images[:_IMAGE_PROBLEMS_SHOWN]
    if len(images) > _IMAGE_PROBLEMS_SHOWN:
        mismatches.append(f"and {len(images) - _IMAGE_PROBLEMS_SHOWN:,} more images missing or changed")
    if mismatches:
        raise UnvalidatedDatasetError(
            f"{dataset_dir} does not match its {MANIFEST_NAME}: {'; '.join(mismatches)}. Validate it again with {command}"
        )
    return manifest


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _in_threads(function: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``function`` over ``items`` in threads: hashing reads files and releases the GIL."""
    if len(items) < 2:
        return list(map(function, items))
    with ThreadPoolExecutor(min(len(items), available_cores() * 2)) as pool:
        return list(pool.map(function, items))
