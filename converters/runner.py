"""Running a converter: plan, convert every item in parallel, assemble, validate, write the manifest.

:func:`run_conversion` is the whole of ``phi3v-data convert`` without the command line:

1. Plan (names and annotation files only). A folder that is not the expected layout raises
   :class:`~phi3v_data.errors.InputLayoutError` before OUT is touched, so nothing is written.
2. Prepare OUT (:mod:`phi3v_data.converters.workdir`): refuse a non-empty folder unless resuming the
   same job or overwriting a previous phi3v-data output.
3. Run ``convert_item`` over a process pool (inline for one worker). A worker writes the item's
   images and then its result file, each atomically; finished items are skipped on ``--resume``.
4. Assemble ``<source>_<split>.jsonl`` from the result files in plan order, so the bytes never
   depend on which worker finished first.
5. Validate OUT with the checks of ``phi3v-data validate`` (image headers), write
   ``manifest.json`` last (with the size and sha256 of every image the records name, from the
   result files: nothing is hashed twice, and the bytes are the same on every run), remove the work
   folder.
"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import orjson

from phi3v_data.atomic import atomic_write_bytes
from phi3v_data.converters.base import SPLITS, Converter, ConverterOptions, Item, ItemResult, Plan
from phi3v_data.converters.workdir import IMAGES_DIR_NAME, Mode, StoredResult, WorkDir, prepare_out_dir
from phi3v_data.cores import available_cores
from phi3v_data.errors import FileNotFoundPhi3vDataError, InputLayoutError, Phi3vDataError, UsageError
from phi3v_data.format import FORMAT_VERSION
from phi3v_data.manifest import (
    ConverterInfo,
    ImageEntry,
    Manifest,
    Rejection,
    SplitEntry,
    image_entries,
    split_entry,
    write_manifest,
)
from phi3v_data.paths import path_fault
from phi3v_data.validation import validate

# Items queued per worker: enough to keep every process busy, few enough to keep memory flat.
_QUEUE_PER_WORKER = 4
_PROBLEMS_SHOWN = 5


class ConversionError(Phi3vDataError, RuntimeError):
    """The conversion could not finish (a worker died, a converter wrote an invalid dataset)."""


class Progress(Protocol):
    """Receives the item phase's progress (the CLI draws a bar with it on a terminal)."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self) -> None:
        """One more item finished (converted or rejected)."""


@dataclass(slots=True)
class ConversionReport:
    """What a finished conversion wrote, for the summary line and the exit code."""

    out_dir: Path
    manifest: Manifest
    items: int
    converted_now: int
    """Items converted by this run (the others were finished by an interrupted run)."""
    seconds: float
    """Time spent converting items in this run."""
    workers: int
    rejected: list[Rejection]

    @property
    def exit_code(self) -> int:
        """0 when every input converted, 1 when a valid dataset was written without some rejected inputs."""
        return 1 if self.rejected else 0


def run_conversion(
    converter: Converter,
    input_dir: Path,
    out_dir: Path,
    options: ConverterOptions,
    *,
    workers: int | None = None,
    mode: Mode = "new",
    progress: Progress | None = None,
) -> ConversionReport:
    """Convert ``input_dir`` into the dataset folder ``out_dir`` (see the module docstring)."""
    if workers is None:
        workers = available_cores()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    _check_folders(input_dir, out_dir)
    plan = converter.plan(input_dir, options)
    _check_plan(converter, plan)
    job = {
        "format_version": FORMAT_VERSION,
        "source": converter.name,
        "options": options.model_dump(mode="json"),
        "plan": _plan_digest(plan),
    }
    work = prepare_out_dir(out_dir, job, mode)

    pending = [item for item in plan.items if not work.is_done(item.key)]
    if progress:
        progress.start(len(plan.items), len(plan.items) - len(pending))
    started = time.perf_counter()
    convert = partial(_convert_and_store, converter, input_dir, options, work)
    for _ in _run_all(convert, pending, workers):
        if progress:
            progress.advance()
    seconds = time.perf_counter() - started

    results = [_load_result(work, item) for item in plan.items]
    rejected = [Rejection(input=name, reason=reason) for name, reason in plan.rejected]
    rejected += [Rejection(input=result.key, reason=result.rejection) for result in results if result.rejection]
    splits = _write_jsonl_files(converter.name, out_dir, plan, results)
    manifest = Manifest(
        converter=ConverterInfo(name=converter.name, options=job["options"]),
        splits=splits,
        rejected=rejected,
        counts=_counts(plan, results, rejected),
        validation=_validate(out_dir, workers) if splits else None,
        images=_named_images(out_dir, results),
    )
    write_manifest(out_dir, manifest)
    work.remove()
    return ConversionReport(out_dir, manifest, len(plan.items), len(pending), seconds, workers, rejected)


def _check_folders(input_dir: Path, out_dir: Path) -> None:
    if not input_dir.exists():
        raise FileNotFoundPhi3vDataError(f"--input {input_dir} does not exist")
    if not input_dir.is_dir():
        raise InputLayoutError(f"--input {input_dir} is a file; give the folder that holds the raw dataset")
    source, target = input_dir.resolve(), out_dir.resolve()
    if source == target or source in target.parents or target in source.parents:
        # The output would be read back as input on the next run (or the input deleted by --overwrite).
        raise UsageError(f"--out {out_dir} and --input {input_dir} must not contain one another; choose another --out")


def _check_plan(converter: Converter, plan: Plan) -> None:
    """Catch a converter's planning bugs before anything is written."""
    keys = set()
    for item in plan.items:
        if item.key in keys:
            raise ConversionError(f"the {converter.name} converter planned two items with the key {item.key!r}")
        if item.split not in SPLITS:
            raise ConversionError(f"the {converter.name} converter planned {item.key!r} into the split {item.split!r}")
        keys.add(item.key)
    if not plan.items and not plan.rejected:
        raise InputLayoutError(f"the {converter.name} source found nothing to convert in the input folder")


def _plan_digest(plan: Plan) -> str:
    items = [[item.key, item.split, item.index, item.payload] for item in plan.items]
    return hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def _convert_and_store(
    converter: Converter, input_dir: Path, options: ConverterOptions, work: WorkDir, item: Item
) -> None:
    """One item, start to finish; runs in a worker process, and only its result file tells the parent."""
    try:
        result = converter.convert_item(item, input_dir, options)
    except Exception as error:  # one bad input, or a converter bug, must not stop the other items
        result = ItemResult.rejected(f"the {converter.name} converter failed on it: {type(error).__name__}: {error}")
    result = _checked(converter.name, result)
    work.store(item.key, result)


def _checked(source: str, result: ItemResult) -> ItemResult:
    """The result, or a rejection when it would write outside images/ or point at an unwritten image."""
    if result.rejection:
        return ItemResult.rejected(result.rejection)
    written = {image.relative_path for image in result.images}
    for path in sorted(written):
        fault = path_fault(path)
        if fault or not path:
            return ItemResult.rejected(f"the {source} converter made an unsafe image path: {path!r}")
    for record in result.records:
        for turn in record.get("conversations", []):
            unwritten = [path for path in turn.get("images", []) if path not in written]
            if unwritten:
                return ItemResult.rejected(
                    f"the {source} converter made a record pointing at unwritten images {unwritten}"
                )
    return result


def _run_all(convert: Callable[[Item], None], items: list[Item], workers: int) -> Iterator[None]:
    """``convert`` over ``items``: inline for one worker, else in a process pool, yielding as each item finishes."""
    workers = min(workers, len(items))
    if workers <= 1:
        yield from map(convert, items)
        return
    queue = iter(items)
    try:
        with ProcessPoolExecutor(max_workers=workers, initializer=_leave_interrupts_to_the_parent) as pool:
            running: set[Future[None]] = set()
            try:
                while True:
                    running |= {
                        pool.submit(convert, item) for item in islice(queue, workers * _QUEUE_PER_WORKER - len(running))
                    }
                    if not running:
                        return
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        yield future.result()
            except KeyboardInterrupt:  # let the items in progress finish (they are kept), drop the queue
                pool.shutdown(cancel_futures=True)
                raise
    except BrokenProcessPool:
        raise ConversionError(
            "a worker process died (out of memory?); the finished items are kept: "
            "rerun with --resume and fewer --workers"
        ) from None


def _leave_interrupts_to_the_parent() -> None:
    """Workers ignore Ctrl-C: the parent stops the pool cleanly instead of every worker dying mid-write."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _load_result(work: WorkDir, item: Item) -> StoredResult:
    stored = work.load(item.key)
    if stored is None:  # every item was just converted: only a foreign hand can remove its file
        raise ConversionError(f"the result of {item.key!r} vanished from {work.path}; rerun with --resume")
    return stored


def _write_jsonl_files(source: str, out_dir: Path, plan: Plan, results: list[StoredResult]) -> dict[str, SplitEntry]:
    """One JSONL per split that has records, lines in plan order."""
    _check_images_agree(results)
    lines_by_split: dict[str, list[bytes]] = {split: [] for split in SPLITS}
    for item, result in zip(plan.items, results, strict=True):
        lines_by_split[item.split].extend(orjson.dumps(record) for record in result.records)
    entries = {}
    for split, lines in lines_by_split.items():
        if lines:
            path = out_dir / f"{source}_{split}.jsonl"
            atomic_write_bytes(path, b"\n".join(lines) + b"\n")
            entries[split] = split_entry(path, len(lines))
    return entries


def _named_images(out_dir: Path, results: list[StoredResult]) -> dict[str, ImageEntry]:
    """The manifest's images: those the records name, with the sha256 of the bytes their item wrote."""
    digests = {path: digest for result in results for path, digest in result.images.items()}
    named = (
        path
        for result in results
        for record in result.records
        for turn in record.get("conversations", [])
        for path in turn.get("images", [])
    )
    return image_entries(out_dir / IMAGES_DIR_NAME, named, digests)


def _check_images_agree(results: Iterable[StoredResult]) -> None:
    """Two items may write the same image only with the same bytes (e.g. two questions on one page)."""
    owners: dict[str, tuple[str, str]] = {}
    for result in results:
        for path, digest in result.images.items():
            owner, first_digest = owners.setdefault(path, (result.key, digest))
            if first_digest != digest:
                raise ConversionError(
                    f"{owner!r} and {result.key!r} both write {IMAGES_DIR_NAME}/{path} with different bytes; "
                    "the output would depend on which finished last"
                )


def _counts(plan: Plan, results: list[StoredResult], rejected: list[Rejection]) -> dict[str, int]:
    counts = {
        "items": len(plan.items),
        "records": sum(len(result.records) for result in results),
        "images": len({path for result in results for path in result.images}),
        "rejected": len(rejected),
        "ignored": sum(plan.ignored.values()),
        "skipped": sum(plan.skipped.values()),
    }
    counts.update({f"ignored.{kind}": count for kind, count in sorted(plan.ignored.items())})
    counts.update({f"skipped.{kind}": count for kind, count in sorted(plan.skipped.items())})
    return counts


def _validate(out_dir: Path, workers: int) -> dict[str, Any]:
    """The validator's summary for the manifest; raises when the converter wrote an invalid dataset."""
    report = validate([out_dir], images="header", workers=workers)
    if not report.ok:
        errors = [problem for problem in report.problems if problem.is_error][:_PROBLEMS_SHOWN]
        shown = "; ".join(f"{Path(problem.file).name}:{problem.line}: {problem.message}" for problem in errors)
        raise ConversionError(
            f"the converted dataset in {out_dir} fails validation ({report.errors} error(s), first: {shown}); this is "
            "a converter bug, please report it"
        )
    summary = report.summary()
    # File names relative to OUT, so that the manifest does not depend on where OUT is.
    summary["files"] = [{**entry, "file": Path(entry["file"]).name} for entry in summary["files"]]
    return summary
