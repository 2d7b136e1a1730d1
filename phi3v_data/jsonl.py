"""Streaming a JSONL file: physical lines with their numbers, then records.

Line numbers count physical lines (``\\n``), 1-based, blank lines included, so an editor's
``:123`` lands on the line a problem names. A ``\\r`` before the ``\\n`` (CRLF files) is dropped;
a UTF-8 byte-order mark at the very start is dropped (the validator reports it). Lines are read one at a time,
so a multi-megabyte line costs its own size and nothing more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:  # the format module loads pydantic, which the validator's fast path does without
    from phi3v_data.format import Record

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class RawLine:
    """One physical line of a JSONL file, its line end removed."""

    number: int
    data: bytes


def iter_raw_lines(path: str | os.PathLike[str]) -> Iterator[RawLine]:
    """Every physical line of the file, numbered from 1."""
    with open(path, "rb") as file:
        for number, data in enumerate(file, start=1):
            if number == 1 and data.startswith(UTF8_BOM):
                data = data[len(UTF8_BOM) :]
            if data.endswith(b"\n"):
                data = data[:-1]
            if data.endswith(b"\r"):
                data = data[:-1]
            yield RawLine(number, data)


def line_images(data: bytes) -> list[str]:
    """The image paths one line names, in conversation order, read without validating the line.

    ``[]`` for a line that is not a record with image lists (blank, not JSON, another shape). For
    quick passes over files that the validator checks, or has accepted, in full.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return []
    turns = value.get("conversations") if isinstance(value, dict) else None
    if not isinstance(turns, list):
        return []
    return [
        path
        for turn in turns
        if isinstance(turn, dict) and isinstance(images := turn.get("images"), list)
        for path in images
        if isinstance(path, str)
    ]


def iter_line_images(path: str | os.PathLike[str]) -> Iterator[list[str]]:
    """:func:`line_images` of every physical line of the file."""
    with open(path, "rb") as file:
        first = file.readline()
        if first:
            yield line_images(first.removeprefix(UTF8_BOM))
        # The line ends stay on: they are JSON whitespace. Without RawLine, twice as fast.
        yield from map(line_images, file)


def iter_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Record]]:
    """The valid records of a file with their line numbers, skipping blank and invalid lines.

    For files a validator has accepted (the trainer's input); use :func:`phi3v_data.validate` to
    find out what is wrong with the others. Lines are parsed by the validator's own function, so
    exactly the lines it accepts come out here.
    """
    # Imported here: the validation package imports this module.
    from phi3v_data.validation.lines import parse_line

    for line in iter_raw_lines(path):
        if line.data and not line.data.isspace():
            record = parse_line(line.data).record
            if record is not None:
                yield line.number, record
