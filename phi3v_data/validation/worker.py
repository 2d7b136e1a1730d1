"""Checking one chunk of a JSONL file: everything about a line that needs no other line.

A :class:`ChunkChecker` runs in each worker process (or inline, with one worker). It returns what
the merger needs for the checks across lines and files (ids, image keys) and the token counts, with
line numbers relative to the chunk.
"""

from __future__ import annotations

import hashlib
import posixpath
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phi3v_data.hd_crop import image_token_count
from phi3v_data.placeholders import placeholder_faults
from phi3v_data.problems import Fault, Problem
from phi3v_data.validation.chunks import ChunkTask, read_chunk
from phi3v_data.validation.image_checks import ImageChecker, ImagesMode
from phi3v_data.validation.plain import plain_record

if TYPE_CHECKING:  # the tokenizer and jinja2 load only when a model is given
    from phi3v_data.prompt import PromptBuilder


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What every chunk is checked against; sent once to each worker process."""

    images: ImagesMode
    max_pixels: int
    num_crops: int | None
    """What image tokens are counted at; None when nothing is (``exists`` and ``none`` without a model)."""
    model_dir: str | None = None
    max_length: int | None = None
    keep_lengths: bool = False
    """Whether to return (line, id, tokens) per record, for ``--lengths``."""


@dataclass(slots=True)
class ChunkResult:
    """What one chunk holds; every line number is relative to the chunk's first line (1)."""

    file_index: int
    byte_count: int
    line_count: int = 0
    last_content_line: int = 0
    records: int = 0
    image_references: int = 0
    problems: list[Problem] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    id_lines: array[int] = field(default_factory=lambda: array("q"))
    tokens: array[int] = field(default_factory=lambda: array("q"))
    """Per counted record: the sequence length with a model, the image tokens without one."""
    lengths: list[tuple[int, str, int]] = field(default_factory=list)
    image_keys: array[int] = field(default_factory=lambda: array("Q"))


class ChunkChecker:
    """Runs the per-line checks of a validation on chunks."""

    def __init__(self, options: CheckOptions, prompt_builder: PromptBuilder | None = None) -> None:
        self.options = options
        self.images = ImageChecker(options.images, options.max_pixels)
        if prompt_builder is None and options.model_dir is not None:
            from phi3v_data.prompt import PromptBuilder

            prompt_builder = PromptBuilder.from_model_dir(options.model_dir)
        self.prompt_builder = prompt_builder
        # Without a model, image tokens need sizes, which only the header modes read.
        self._count_images = options.images in ("header", "decode")
        self._paths_only = options.images == "none"

    def check(self, task: ChunkTask) -> ChunkResult:
        chunk = read_chunk(task.path, task.start, task.end)
        result = ChunkResult(task.file_index, task.end - task.start, line_count=len(chunk.lines))
        report = _Reporter(task.display_name, result.problems)
        if chunk.has_bom:
            report(1, None, Fault("file-bom", "the file starts with a UTF-8 byte-order mark; it is skipped"))
        # The loop runs once per record: locals instead of attribute look-ups. Token counts need the
        # Record itself, so with a model every line takes the careful path.
        add_id, add_id_line, check_images = result.ids.append, result.id_lines.append, self._check_images
        quick = plain_record if self.prompt_builder is None else _unsure
        records = last_content_line = 0
        for number, data in enumerate(chunk.lines, start=1):
            if not data or data.isspace():
                report(number, None, Fault("line-blank", "blank line; it is skipped"))
                continue
            records += 1
            last_content_line = number
            plain = quick(data)
            if plain is None:
                self._check_carefully(task, data, number, result, report)
                continue
            record_id, images = plain
            add_id(record_id)
            add_id_line(number)
            check_images(task, record_id, images, number, result, report, paths_vetted=True)
        result.records, result.last_content_line = records, last_content_line
        return result

    def _check_carefully(
        self, task: ChunkTask, data: bytes, number: int, result: ChunkResult, report: _Reporter
    ) -> None:
        """The checks of a line the fast path was unsure of, from pydantic's Record."""
        # Imported on the first such line: a file of plain lines never loads pydantic.
        from phi3v_data.validation.lines import parse_line

        record, record_id, faults = parse_line(data)
        for fault in faults:
            report(number, record_id, fault)
        if record_id is not None:
            result.ids.append(record_id)
            result.id_lines.append(number)
        if record is None:
            return
        for fault in placeholder_faults(record):
            report(number, record.id, fault)
        image_tokens = self._check_images(task, record.id, record.images, number, result, report, paths_vetted=False)
        if self.prompt_builder is None or image_tokens is None:
            return
        tokens = self.prompt_builder.count_tokens(record, image_tokens)
        result.tokens.append(tokens)
        if self.options.keep_lengths:
            result.lengths.append((number, record.id, tokens))
        if self.options.max_length is not None and tokens > self.options.max_length:
            report(number, record.id, _too_long(tokens, sum(image_tokens), self.options.max_length))

    def _check_images(
        self,
        task: ChunkTask,
        record_id: str,
        images: list[str],
        number: int,
        result: ChunkResult,
        report: _Reporter,
        paths_vetted: bool,
    ) -> list[int] | None:
        """Check a valid record's images; their image-token counts when every one was read (never with ``none``).

        ``paths_vetted`` says the fast path already found every path plainly within the path rules.
        """
        result.image_references += len(images)
        if task.track_images:
            result.image_keys.extend(map(image_key, images))
        if self._paths_only:
            if not paths_vetted:
                self._image_sizes(task.images_root, images, number, record_id, report)
            return None
        sizes = self._image_sizes(task.images_root, images, number, record_id, report)
        num_crops = self.options.num_crops
        if sizes is None or num_crops is None:
            return None
        image_tokens = [image_token_count(width, height, num_crops) for width, height in sizes]
        if self.prompt_builder is None and self._count_images:
            result.tokens.append(sum(image_tokens))
        return image_tokens

    def _image_sizes(
        self, root: Path, images: list[str], number: int, record_id: str, report: _Reporter
    ) -> list[tuple[int, int]] | None:
        """Check each image; their display sizes when every one was read, else None."""
        sizes: list[tuple[int, int]] | None = []
        for relative in images:
            faults, size = self.images.check(root, relative)
            for fault in faults:
                report(number, record_id, fault)
            if size is None or sizes is None:
                sizes = None
            else:
                sizes.append(size)
        return sizes


def image_key(relative: str) -> int:
    """A stable 64-bit key of an image path as written, for finding an image shared by two files."""
    digest = hashlib.blake2b(posixpath.normpath(relative).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _unsure(data: bytes) -> None:
    """The fast path switched off: every line is parsed carefully."""
    return None


def _too_long(tokens: int, image_tokens: int, max_length: int) -> Fault:
    return Fault(
        "sequence-too-long",
        f"{tokens} tokens ({image_tokens} of them for images) is over --max-length {max_length}; lower "
        "--num-crops, use fewer images, or shorten the texts",
    )


class _Reporter:
    """Turns faults into problems of one file."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems

    def __call__(self, line: int, record_id: str | None, fault: Fault) -> None:
        self.problems.append(Problem(fault.code, fault.message, self.file, line, record_id))


# The checker of a worker process, built once by the pool's initializer.
_process_checker: ChunkChecker | None = None


def init_worker(options: CheckOptions) -> None:
    global _process_checker
    _process_checker = ChunkChecker(options)


def check_chunk(task: ChunkTask) -> ChunkResult:
    assert _process_checker is not None, "init_worker did not run in this process"
    return _process_checker.check(task)
