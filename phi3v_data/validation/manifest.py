"""``validate DIR --write-manifest``: certify a hand-made dataset folder for the trainer.

The manifest lists each JSONL file under its split name with its record count and sha256, and
keeps the validation summary. A manifest a converter wrote keeps its converter, rejections and
counts; only the splits and the validation summary are replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.manifest import Manifest, SplitEntry, read_manifest, split_entry, split_names, write_manifest
from phi3v_data.validation.report import ValidationReport


def validated_splits(report: ValidationReport) -> dict[str, SplitEntry]:
    """The manifest's splits for the files ``report`` validated, named by the core's one rule."""
    records = {Path(summary.file): summary.records for summary in report.files}
    return {name: split_entry(file, records[file]) for name, file in split_names(list(records)).items()}


def write_validated_manifest(dataset_dir: str | os.PathLike[str], report: ValidationReport) -> Path:
    """Write ``manifest.json`` for the folder's files as ``report`` found them; returns its path."""
    folder = Path(dataset_dir)
    try:
        manifest = read_manifest(folder)
    except UnvalidatedDatasetError:  # none yet, or unreadable: start afresh
        manifest = Manifest()
    update = {"splits": validated_splits(report), "validation": report.summary()}
    return write_manifest(folder, manifest.model_copy(update=update))
