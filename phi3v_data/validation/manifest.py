"""``validate DIR --write-manifest``: certify a hand-made dataset folder for the trainer.

The manifest lists each JSONL file under its split name with its record count and sha256, and
keeps the validation summary. A manifest a converter wrote keeps its converter, rejections and
counts; only the splits and the validation summary are replaced.
"""

from __future__ import annotations

import os
from pathlib import Path

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.manifest import Manifest, read_manifest, split_entry, write_manifest
from phi3v_data.validation.report import ValidationReport

# The split suffixes `phi3v-data convert` writes (<source>_<split>.jsonl), as the trainer reads them.
KNOWN_SPLITS = frozenset({"train", "val", "test"})


def split_names(files: list[Path]) -> list[str]:
    """Each file's split: ``ucf101_val.jsonl`` is ``val``; a file with no known split suffix, its stem."""
    suffixes = [file.stem.rsplit("_", 1)[-1] for file in files]
    if len(set(suffixes)) == len(suffixes) and all(suffix in KNOWN_SPLITS for suffix in suffixes):
        return suffixes
    return [file.stem for file in files]


def write_validated_manifest(dataset_dir: str | os.PathLike[str], report: ValidationReport) -> Path:
    """Write ``manifest.json`` for the folder's files as ``report`` found them; returns its path."""
    folder = Path(dataset_dir)
    try:
        manifest = read_manifest(folder)
    except UnvalidatedDatasetError:  # none yet, or unreadable: start afresh
        manifest = Manifest()
    files = [Path(summary.file) for summary in report.files]
    splits = {
        name: split_entry(file, summary.records) for name, file, summary in zip(split_names(files), files, report.files)
    }
    return write_manifest(folder, manifest.model_copy(update={"splits": splits, "validation": report.summary()}))
