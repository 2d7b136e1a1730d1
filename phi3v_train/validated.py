"""Only validated data trains: a dataset's manifest must match its files, or ``--validate`` checks it now.

The manifest check (:func:`phi3v_data.manifest.require_validated`) costs one sha256 per JSONL file and
one ``stat`` per image (an image is hashed only when it may have changed since the manifest was
written). ``--validate`` instead runs the validator (image headers included) and, when it finds no
error, describes the folder's files the way a manifest would, without writing one.

:func:`manifest_notes` compares what the manifests certified with the run: lengths counted at another
num_crops are recounted at the run's (with a message saying so), and a ``--lengths`` file is refused then.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from phi3v_data.errors import UnvalidatedDatasetError, UsageError
from phi3v_data.manifest import MANIFEST_NAME, Manifest, require_validated
from phi3v_train.config import TrainConfig

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


def manifest_notes(config: TrainConfig, manifest_of: Callable[[Path], Manifest], num_crops: int) -> list[str]:
    """What to tell the user about the manifests of the run's --data and --eval-data folders.

    Lengths that `phi3v-data validate --model` counted at another num_crops than the run's are recounted
    at the run's (the trainer counts every length it uses itself): the note says so. A ``--lengths`` file
    is trusted as it is, so it is refused then, with the command that rewrites it. A manifest from before
    the image index is accepted, with a note that its images are not checked.
    """
    notes = []
    folders: dict[Path, Path] = {}  # each folder once, named as the user named it first
    for folder in [*config.data, *([config.eval_data] if config.eval_data is not None else [])]:
        folders.setdefault(folder.resolve(), folder)
    for folder in folders.values():
        manifest = manifest_of(folder)
        counted = manifest.lengths_num_crops
        if counted is not None and counted != num_crops:
            if config.lengths is not None:
                raise UsageError(
                    f"--lengths {config.lengths}: {folder} was validated with lengths counted at num_crops {counted}, "
                    f"this run uses num_crops {num_crops}. Count them again with `phi3v-data validate {folder} --model "
                    f"MODEL --num-crops {num_crops} --lengths {config.lengths} --write-manifest`, or pass --num-crops {counted}"
                )
            notes.append(
                f"{folder} was validated with lengths counted at num_crops {counted}{_longest(manifest)}; this run "
                f"uses num_crops {num_crops}, so every length is recounted at {num_crops} (--max-length applies to the recount)"
            )
        if manifest.images is None and not config.validate_data:
            notes.append(
                f"{folder}/{MANIFEST_NAME} predates the image index, so its images were not compared with what was "
                f"validated; add it with `phi3v-data validate {folder} --write-manifest`"
            )
    return notes


def _longest(manifest: Manifest) -> str:
    tokens = (manifest.validation or {}).get("tokens") or {}
    return f" (at most {tokens['max']:,} tokens)" if isinstance(tokens.get("max"), int) else ""
