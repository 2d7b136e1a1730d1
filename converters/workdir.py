"""The runner's work folder, ``OUT/.phi3v-work``: what makes a conversion resumable.

It holds ``job.json`` (the source, its options and a digest of the plan: a resumed run must be
the same job) and, per finished item, ``items/<sha256 of the key>.json`` with the item's records,
the paths and sha256 of its images, or its rejection. An item's images are written first and its
result file last, each atomically, so a result file proves the item is complete on disk, and after
a ``kill -9`` no final name holds half a file.

The work folder is created before anything else in OUT and removed after ``manifest.json`` is
written: a folder holding it is an unfinished conversion, which ``--resume`` completes and
``--overwrite`` replaces.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from phi3v_data.atomic import atomic_write_bytes, is_temporary
from phi3v_data.converters.base import ItemResult
from phi3v_data.errors import UsageError
from phi3v_data.manifest import MANIFEST_NAME

WORK_DIR_NAME = ".phi3v-work"
IMAGES_DIR_NAME = "images"
_JOB_FILE = "job.json"
_RESULTS_DIR = "items"

Mode = Literal["new", "resume", "overwrite"]


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A finished item as its result file records it."""

    key: str
    records: list[dict[str, Any]]
    images: dict[str, str]
    """Relative image path -> sha256 of the bytes written there."""
    rejection: str | None


@dataclass(frozen=True, slots=True)
class WorkDir:
    """The work folder of the conversion writing into ``out_dir`` (picklable: workers store results)."""

    out_dir: Path

    @property
    def path(self) -> Path:
        return self.out_dir / WORK_DIR_NAME

    def store(self, key: str, result: ItemResult) -> None:
        """Write the item's images, then its result file (read back by :meth:`load`)."""
        images = {}
        for image in result.images:
            atomic_write_bytes(self.out_dir / IMAGES_DIR_NAME / image.relative_path, image.data)
            images[image.relative_path] = hashlib.sha256(image.data).hexdigest()
        document = {"key": key, "records": result.records, "images": images, "rejection": result.rejection}
        atomic_write_bytes(self._result_path(key), orjson.dumps(document))

    def load(self, key: str) -> StoredResult | None:
        """The item's stored result, or None when it has not finished."""
        try:
            document = orjson.loads(self._result_path(key).read_bytes())
        except FileNotFoundError:
            return None
        return StoredResult(document["key"], document["records"], document["images"], document["rejection"])

    def is_done(self, key: str) -> bool:
        return self._result_path(key).is_file()

    def remove(self) -> None:
        shutil.rmtree(self.path)

    def _result_path(self, key: str) -> Path:
        # Keys are paths with slashes and any characters: a digest makes a safe, flat file name.
        return self.path / _RESULTS_DIR / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.json"


def prepare_out_dir(out_dir: Path, job: dict[str, Any], mode: Mode) -> WorkDir:
    """Make ``out_dir`` ready for ``job``; raises :class:`UsageError` when ``mode`` does not allow it.

    ``new`` needs a missing or empty folder; ``resume`` continues an interrupted run of the same
    job (or starts one in an empty folder); ``overwrite`` replaces a previous phi3v-data output and
    refuses any other folder, so a mistyped ``--out`` never deletes someone's files.
    """
    work = WorkDir(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a folder")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return _start(work, job)
    if mode == "new":
        raise UsageError(
            f"--out {out_dir} is not empty: pass --resume to finish an interrupted conversion there, "
            "--overwrite to replace a previous conversion, or choose another folder"
        )
    if mode == "overwrite":
        if not (work.path.is_dir() or _written_by_a_conversion(out_dir)):
            raise UsageError(
                f"refusing to --overwrite {out_dir}: it holds neither {WORK_DIR_NAME} nor the {MANIFEST_NAME} of a "
                "conversion, so it is not a phi3v-data conversion's output; empty it yourself or choose another folder"
            )
        return _start(work, job)
    return _resume(work, job)


def _written_by_a_conversion(out_dir: Path) -> bool:
    """Whether OUT's manifest names a converter (``validate --write-manifest`` on a hand-made dataset does not)."""
    try:
        manifest = orjson.loads((out_dir / MANIFEST_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("converter"), dict)


def _resume(work: WorkDir, job: dict[str, Any]) -> WorkDir:
    job_path = work.path / _JOB_FILE
    if not work.path.is_dir():
        finished = (work.out_dir / MANIFEST_NAME).is_file()
        raise UsageError(
            f"--resume: {work.out_dir} holds a finished conversion, there is nothing to resume (pass --overwrite to "
            "convert again)"
            if finished
            else f"--resume: {work.out_dir} is not an interrupted phi3v-data conversion (it has no {WORK_DIR_NAME})"
        )
    if not job_path.is_file():  # killed before job.json was written: nothing of this job exists yet
        return _start(work, job)
    previous = orjson.loads(job_path.read_bytes())
    difference = _job_difference(previous, job)
    if difference:
        raise UsageError(
            f"--resume: the interrupted conversion in {work.out_dir} {difference}; rerun with the same source, input "
            "and options, or pass --overwrite to start again"
        )
    _remove_temporaries(work.out_dir)
    return work


def _start(work: WorkDir, job: dict[str, Any]) -> WorkDir:
    # The work folder exists before anything is deleted, so a kill here leaves a folder that
    # --overwrite still recognises as ours.
    work.path.mkdir(parents=True, exist_ok=True)
    (work.path / _JOB_FILE).unlink(missing_ok=True)
    shutil.rmtree(work.path / _RESULTS_DIR, ignore_errors=True)
    shutil.rmtree(work.out_dir / IMAGES_DIR_NAME, ignore_errors=True)
    for previous_output in [*work.out_dir.glob("*.jsonl"), work.out_dir / MANIFEST_NAME]:
        previous_output.unlink(missing_ok=True)
    _remove_temporaries(work.out_dir)
    atomic_write_bytes(work.path / _JOB_FILE, orjson.dumps(job, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
    return work


def _job_difference(previous: dict[str, Any], job: dict[str, Any]) -> str | None:
    if previous.get("source") != job["source"]:
        return f"converted {previous.get('source')!r}, not {job['source']!r}"
    old_options, new_options = previous.get("options", {}), job["options"]
    changed = sorted(
        name for name in old_options.keys() | new_options.keys() if old_options.get(name) != new_options.get(name)
    )
    if changed:
        details = ", ".join(
            f"{name}: {old_options.get(name)!r} then, {new_options.get(name)!r} now" for name in changed
        )
        return f"used other options ({details})"
    if previous != job:
        return "planned other items: the input folder changed since"
    return None


def _remove_temporaries(out_dir: Path) -> None:
    """Delete what interrupted atomic writes left behind (never visible under a final name)."""
    for folder, _, files in os.walk(out_dir):
        for name in files:
            if is_temporary(name):
                Path(folder, name).unlink()
