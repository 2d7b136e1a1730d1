"""``validate(...)``: check datasets against the format, their images and a sequence-length budget.

The files are cut into line-aligned chunks; worker processes check the chunks (parsing, schema,
paths, images, token counts) and this process merges their results in file order. With one worker,
or one chunk, everything runs in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from phi3v_data.atomic import atomic_stream
from phi3v_data.cores import available_cores
from phi3v_data.errors import UnreadableInputError, UsageError
from phi3v_data.hd_crop import MAX_NUM_CROPS, default_num_crops
from phi3v_data.images import DEFAULT_MAX_PIXELS
from phi3v_data.jsonl import iter_line_images
from phi3v_data.validation.chunks import ChunkTask, chunk_ranges
from phi3v_data.validation.image_checks import IMAGES_MODES, ImagesMode
from phi3v_data.validation.inputs import Dataset, discover
from phi3v_data.validation.merge import Merger
from phi3v_data.validation.report import TokenStats, ValidationReport
from phi3v_data.validation.worker import CheckOptions, ChunkChecker, ChunkResult, check_chunk, init_worker

ProgressCallback = Callable[[int, int], None]
"""Called after each chunk with (bytes checked, bytes in all files)."""

# Lines are cheap to check, images are not: small chunks keep every worker busy on image-heavy files.
_LINE_CHUNK_BYTES = 4 << 20
_IMAGE_CHUNK_BYTES = 256 << 10


def validate(
    paths: Sequence[str | os.PathLike[str]],
    *,
    images_root: str | os.PathLike[str] | None = None,
    images: ImagesMode = "header",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    model_dir: str | os.PathLike[str] | None = None,
    num_crops: int | None = None,
    max_length: int | None = None,
    lengths_file: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Validate JSONL files and dataset folders; problems in the data are returned, never raised.

    ``images`` is how far image files are checked (``decode``, ``header``, ``exists``, ``none``).
    With ``model_dir`` every record's exact token count is computed, which needs each image's size:
    ``none`` and ``exists`` then read headers like ``header`` does. Tokens are counted at ``num_crops``;
    when it is None, at the core's rule (:func:`~phi3v_data.hd_crop.default_num_crops`, the trainer's
    default too) over every line of the inputs, learned by a quick first pass that stops at the first
    record with several images. ``workers`` defaults to every
    available core. Raises :class:`~phi3v_data.errors.Phi3vDataError` subclasses for unusable
    arguments: a missing path, a folder without JSONL files, a model folder without tokenizer files.
    """
    _check_arguments(images, max_pixels, model_dir, num_crops, max_length, lengths_file, workers)
    datasets = discover(paths, images_root)
    if model_dir is not None and images in ("none", "exists"):
        images = "header"
    prompt_builder = None
    if model_dir is not None:
        from phi3v_data.prompt import PromptBuilder

        prompt_builder = PromptBuilder.from_model_dir(Path(model_dir))  # fail here, before any work
    # With a model, images is at least "header" by now: every record has image headers to read.
    tasks = _plan(datasets, _IMAGE_CHUNK_BYTES if images != "none" else _LINE_CHUNK_BYTES)
    given_num_crops = num_crops is not None
    if num_crops is None and images in ("header", "decode"):  # tokens are counted: choose by the rule
        num_crops = _default_num_crops(datasets)
    options = CheckOptions(
        images=images,
        max_pixels=max_pixels,
        num_crops=num_crops,
        model_dir=None if model_dir is None else str(model_dir),
        max_length=max_length,
        keep_lengths=lengths_file is not None,
    )
    total_bytes = sum(task.end - task.start for task in tasks)
    with ExitStack() as stack:
        lengths = stack.enter_context(atomic_stream(lengths_file)) if lengths_file is not None else None
        merger = Merger(datasets, lengths)
        done = 0
        for result in _results(tasks, options, workers or available_cores(), prompt_builder):
            merger.add(result)
            done += result.byte_count
            if progress is not None:
                progress(done, total_bytes)
        problems, files = merger.finish()
    kind: Literal["sequence", "image"] = "sequence" if model_dir is not None else "image"
    counted = merger.tokens if kind == "sequence" or merger.image_references else ()
    return ValidationReport(
        problems=tuple(problems),
        files=tuple(files),
        options=_options_summary(options, images_root, lengths_file, given_num_crops),
        image_references=merger.image_references,
        tokens=TokenStats.from_counts(kind, counted),
    )


def _check_arguments(
    images: str,
    max_pixels: int,
    model_dir: object,
    num_crops: int | None,
    max_length: int | None,
    lengths_file: object,
    workers: int | None,
) -> None:
    if images not in IMAGES_MODES:
        raise UsageError(f"images must be one of {', '.join(IMAGES_MODES)}, not {images!r}")
    if max_pixels < 1:
        raise UsageError(f"the pixel limit must be positive, not {max_pixels}")
    if num_crops is not None and not 1 <= num_crops <= MAX_NUM_CROPS:
        raise UsageError(f"num_crops must be between 1 and {MAX_NUM_CROPS}, not {num_crops}")
    if max_length is not None and max_length < 1:
        raise UsageError(f"max_length must be positive, not {max_length}")
    if model_dir is None and (max_length is not None or lengths_file is not None):
        raise UsageError(
            "counting tokens (--max-length, --lengths) needs the model's tokenizer files: pass --model DIR"
        )
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, not {workers}")


def _plan(datasets: list[Dataset], chunk_bytes: int) -> list[ChunkTask]:
    tasks = []
    file_index = 0
    for dataset in datasets:
        track_images = len(dataset.files) > 1
        for file in dataset.files:
            try:
                ranges = list(chunk_ranges(file.path, chunk_bytes))
            except OSError as error:
                raise UnreadableInputError(f"cannot read {file.display_name}: {error.strerror or error}") from None
            tasks += [
                ChunkTask(file_index, str(file.path), file.display_name, dataset.images_root, track_images, start, end)
                for start, end in ranges
            ]
            file_index += 1
    return tasks


def _default_num_crops(datasets: list[Dataset]) -> int:
    """The rule's num_crops over every line of the datasets' files (a line that is no record counts as none)."""

    def images_per_line() -> Iterator[int]:
        for dataset in datasets:
            for file in dataset.files:
                try:
                    yield from map(len, iter_line_images(file.path))
                except OSError as error:
                    raise UnreadableInputError(f"cannot read {file.display_name}: {error.strerror or error}") from None

    return default_num_crops(images_per_line())


def _results(tasks: list[ChunkTask], options: CheckOptions, workers: int, prompt_builder: Any) -> Iterator[ChunkResult]:
    """Each task's result, in task order."""
    if workers == 1 or len(tasks) < 2:
        checker = ChunkChecker(options, prompt_builder)
        yield from map(checker.check, tasks)
        return
    # Processes, not threads: the checks are Python code, which holds the GIL. An executor rather than
    # a multiprocessing.Pool: a worker killed (out of memory, say) fails the run instead of hanging it.
    with ProcessPoolExecutor(min(workers, len(tasks)), initializer=init_worker, initargs=(options,)) as pool:
        yield from pool.map(check_chunk, tasks)



def _options_summary(
    options: CheckOptions, images_root: object, lengths_file: object, given_num_crops: bool
) -> dict[str, Any]:
    return {
        "images": options.images,
        "images_root": None if images_root is None else str(images_root),
        "max_pixels": options.max_pixels,
        "model": options.model_dir,
        "num_crops": options.num_crops,  # None when nothing was counted
        # False: chosen by the rule of phi3v_data.hd_crop.default_num_crops.
        "num_crops_given": given_num_crops,
        "max_length": options.max_length,
        "lengths": None if lengths_file is None else str(lengths_file),
    }
