"""Only validated data trains: a dataset's manifest must match its files, or ``--validate`` checks it now.

The manifest check (:func:`phi3v_data.manifest.require_validated`) costs one sha256 per JSONL file.
``--validate`` instead runs the validator (image headers included) and, when it finds no error,
describes the folder's files the way a manifest would, without writing one.
"""

from __future__ import annotations

from pathlib import Path

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.manifest import Manifest, require_validated, split_entry
from phi3v_data.validation import validate

_PROBLEMS_SHOWN = 3
# What `phi3v-data convert` names its files: <source>_<split>.jsonl.
SPLIT_SUFFIXES = ("train", "val", "test")


def open_dataset(folder: Path, validate_now: bool) -> Manifest:
    """The dataset's manifest; raises :class:`UnvalidatedDatasetError` naming the command to run."""
    if not validate_now:
        return require_validated(folder)
    report = validate([folder], images="header")
    if not report.ok:
        errors = [problem for problem in report.problems if problem.is_error]
        shown = "; ".join(
            f"{problem.file}:{problem.line} {problem.code}: {problem.message}" for problem in errors[:_PROBLEMS_SHOWN]
        )
        raise UnvalidatedDatasetError(
            f"{folder} does not validate ({report.errors} error(s)): {shown}"
            f"{'; and more' if len(errors) > _PROBLEMS_SHOWN else ''}. See every problem with `phi3v-data validate {folder}`"
        )
    return Manifest(
        splits={split_name(Path(summary.file)): split_entry(Path(summary.file), summary.records) for summary in report.files},
        validation=report.summary(),
    )


def split_name(path: Path) -> str:
    """``docvqa_val.jsonl`` is the ``val`` split; a file without a split suffix is named by its stem."""
    stem = path.stem
    suffix = stem.rsplit("_", 1)[-1]
    return suffix if suffix in SPLIT_SUFFIXES else stem
