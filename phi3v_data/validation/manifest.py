"""``validate DIR --write-manifest``: certify a hand-made dataset folder for the trainer.

The manifest lists each JSONL file under its split name with its record count and sha256, every
image the files name with its size and sha256, and keeps the validation summary. A manifest a
converter wrote keeps its converter, rejections and counts; the splits, the images and the
validation summary are replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.jsonl import iter_line_images
from phi3v_data.manifest import (
    ImageEntry,
    Manifest,
    SplitEntry,
    image_entries,
    read_manifest,
    split_entry,
    split_names,
    write_manifest,
)
from phi3v_data.paths import IMAGES_DIR
from phi3v_data.validation.report import ValidationReport


def validated_splits(report: ValidationReport) -> dict[str, SplitEntry]:
    """The manifest's splits for the files ``report`` validated, named by the core's one rule."""
    records = {Path(summary.file): summary.records for summary in report.files}
    return {name: split_entry(file, records[file]) for name, file in split_names(list(records)).items()}


def validated_images(dataset_dir: Path, report: ValidationReport) -> dict[str, ImageEntry]:
    """The manifest's images: every image the validated files name, under the folder's ``images/``, hashed now."""
    paths = (path for summary in report.files for images in iter_line_images(summary.file) for path in images)
    return image_entries(dataset_dir / IMAGES_DIR, paths)


def write_validated_manifest(dataset_dir: str | os.PathLike[str], report: ValidationReport) -> Path:
    """Write ``manifest.json`` for the folder's files and images as ``report`` found them; returns its path."""
    folder = Path(dataset_dir)
    try:
        manifest = read_manifest(folder)
    except UnvalidatedDatasetError:  # none yet, or unreadable: start afresh
        manifest = Manifest()
    update = {
        "splits": validated_splits(report),
        "validation": report.summary(),
        "images": validated_images(folder, report),
    }
    return write_manifest(folder, manifest.model_copy(update=update))
