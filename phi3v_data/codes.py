"""Stable problem codes: the names users grep for, suppress and document.

A code never changes meaning once released. ``CODE_INFO`` gives each code its severity and a one-line
description; the README's table of problem codes is kept equal to it by a test.
"""

from __future__ import annotations

from typing import Literal, get_args

Severity = Literal["error", "warning"]

ProblemCode = Literal[
    # The file and its lines
    "file-empty",
    "file-bom",
    "line-not-utf8",
    "line-blank",
    "line-invalid-json",
    "line-not-object",
    # The record against the schema
    "schema-violation",
    "field-unknown",
    # Across records and files
    "id-duplicate",
    "image-split-leakage",
    # Image paths
    "image-path-backslash",
    "image-path-absolute",
    "image-path-parent",
    "image-path-nul",
    "image-path-outside-root",
    # Image files
    "image-missing",
    "image-not-file",
    "image-unreadable",
    "image-zero-size",
    "image-too-large",
    "image-truncated",
    "image-extension-mismatch",
    "image-decode-failed",
    # Image placeholders
    "placeholder-mismatch",
    "placeholder-in-assistant",
    # Sequence length
    "sequence-too-long",
]

CODE_INFO: dict[str, tuple[Severity, str]] = {
    "file-empty": ("error", "The JSONL file holds no record."),
    "file-bom": ("warning", "The file starts with a UTF-8 byte-order mark; it is skipped."),
    "line-not-utf8": ("error", "The line's bytes are not valid UTF-8."),
    "line-blank": ("warning", "A blank line before the end of the file; it is skipped."),
    "line-invalid-json": ("error", "The line is not valid JSON (NaN and Infinity are not JSON)."),
    "line-not-object": ("error", "The line is JSON but not an object."),
    "schema-violation": ("error", "A field is missing, empty or of the wrong type; the message names its path."),
    "field-unknown": ("warning", "A field the format does not define; the trainer ignores it."),
    "id-duplicate": ("error", "The id was already used by an earlier line of the dataset."),
    "image-split-leakage": ("warning", "The same image file is used by two splits."),
    "image-path-backslash": ("error", "The image path uses a backslash; use POSIX '/' separators."),
    "image-path-absolute": ("error", "The image path is absolute; paths are relative to the images root."),
    "image-path-parent": ("error", "The image path has a '..' segment."),
    "image-path-nul": ("error", "The image path holds a NUL character, which no file system accepts."),
    "image-path-outside-root": ("error", "The image path resolves (through a symlink) outside the images root."),
    "image-missing": ("error", "No file at the image path."),
    "image-not-file": ("error", "The image path names a folder or other non-regular file."),
    "image-unreadable": ("error", "The file's header is not a supported image format."),
    "image-zero-size": ("error", "The image's width or height is 0."),
    "image-too-large": ("error", "The image has more pixels than the limit (a decompression bomb)."),
    "image-truncated": ("error", "The image file ends before its end marker (e.g. JPEG EOI, PNG IEND)."),
    "image-extension-mismatch": ("warning", "The file's format does not match its extension."),
    "image-decode-failed": ("error", "The image does not decode fully (with --images decode)."),
    "placeholder-mismatch": (
        "error",
        "The <|image_k|> tags do not number the record's images 1..n in order, each once.",
    ),
    "placeholder-in-assistant": ("warning", "An assistant text holds an <|image_k|> tag; it is trained as text."),
    "sequence-too-long": ("error", "The record's token count exceeds --max-length."),
}

ALL_CODES: tuple[str, ...] = get_args(ProblemCode)


def severity_of(code: str) -> Severity:
    """The severity a code always has."""
    return CODE_INFO[code][0]
