"""Cutting JSONL files into line-aligned byte ranges that processes can check independently.

A chunk starts at the beginning of a line and ends just after a ``\\n`` (or at the end of the
file), so no line is split; a line longer than the chunk size simply makes its chunk longer. Line
numbers inside a chunk count from 1; the merger adds the lines of the chunks before it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from phi3v_data.jsonl import UTF8_BOM

_SCAN_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """One byte range of one file, and what its checks need to know about the file."""

    file_index: int
    path: str
    display_name: str
    images_root: Path
    """The resolved images root the file's image paths are relative to."""
    track_images: bool
    """Whether to return the chunk's image keys, for the leakage check across a dataset's files."""
    start: int
    end: int


def chunk_ranges(path: str | os.PathLike[str], chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Line-aligned ``(start, end)`` byte ranges covering the file; none for an empty file."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        start = 0
        while start < size:
            end = _line_end_after(file, min(start + chunk_bytes, size), size)
            yield start, end
            start = end


def _line_end_after(file: BinaryIO, position: int, size: int) -> int:
    """The offset just past the first ``\\n`` at or after ``position - 1`` (the file's size if none)."""
    if position >= size:
        return size
    file.seek(position - 1)
    while block := file.read(_SCAN_BLOCK):
        newline = block.find(b"\n")
        if newline >= 0:
            return file.tell() - len(block) + newline + 1
    return size


class ChunkText(NamedTuple):
    """A chunk's physical lines without their ``\\n``, and whether it began with a byte-order mark."""

    lines: list[bytes]
    has_bom: bool


def read_chunk(path: str, start: int, end: int) -> ChunkText:
    """Read one chunk and split it into lines."""
    with open(path, "rb") as file:
        file.seek(start)
        data = file.read(end - start)
    has_bom = start == 0 and data.startswith(UTF8_BOM)
    if has_bom:
        data = data[len(UTF8_BOM) :]
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        # The piece after the final newline is not a line: a chunk (or file) ends with its newline.
        lines.pop()
    return ChunkText(lines, has_bom)
