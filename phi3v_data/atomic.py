"""Atomic file writes: a final name only ever names a complete file.

Each write goes to a temporary file in the same folder, is flushed to disk, and is renamed over the
final name (``os.replace`` is atomic on POSIX and Windows). After a crash or ``kill -9`` a reader
sees the old file or the new one, never half of one; stray temporaries carry ``.tmp-`` in their name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TEMP_MARKER = ".tmp-"


@contextmanager
def atomic_stream(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through; it replaces ``path`` only when the block succeeds.

    For outputs too large to hold in memory (``validate --lengths`` on millions of records).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f"{TEMP_MARKER}{target.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file appears whole or not at all."""
    with atomic_stream(path) as file:
        file.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text (``\\n`` line ends on every platform)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether a file is a leftover temporary of an interrupted atomic write."""
    return Path(path).name.startswith(TEMP_MARKER)
