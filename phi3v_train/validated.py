"""Only validated data trains: a dataset's manifest must match its files, or ``--validate`` checks it now.

The manifest check (:func:`phi3v_data.manifest.require_validated`) costs one sha256 per JSONL file.
``--validate`` instead runs the validator (image headers included) and, when it finds no error,
describes the folder's files the way a manifest would, without writing one.
"""

from __future__ import annotations

from pathlib import Path

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.manifest import Manifest, require_validated

_PROBLEMS_SHOWN = 3


class InvalidDataError(UnvalidatedDatasetError):
    """``--validate`` found errors in the data (the trainer exits 1 for it, as the validator would)."""


def open_dataset(folder: Path, validate_now: bool) -> Manifest:
    """The dataset's manifest; raises :class:`UnvalidatedDatasetError` naming the command to run."""
    if not validate_now:
        return require_validated(folder)
    # Imported here: the validator is needed only with --validate, and `phi3v-train --help` stays light.
    from phi3v_data.validation import validate
    from phi3v_data.validation.manifest import validated_splits

    report = validate([folder], images="header")
    if not report.ok:
        errors = [problem for problem in report.problems if problem.is_error]
        shown = "; ".join(
            f"{problem.file}:{problem.line} {problem.code}: {problem.message}" for problem in errors[:_PROBLEMS_SHOWN]
        )
        raise InvalidDataError(
            f"{folder} does not validate ({report.errors} error(s)): {shown}"
            f"{'; and more' if len(errors) > _PROBLEMS_SHOWN else ''}. See every problem with `phi3v-data validate {folder}`"
        )
    # The splits as `phi3v-data validate --write-manifest` lists them: a split means the same file
    # whether the manifest was written earlier or the data is validated now.
    return Manifest(splits=validated_splits(report), validation=report.summary())
