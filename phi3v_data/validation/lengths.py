"""``--lengths FILE``: one JSON line per counted record, written as the validation streams.

The file can hold millions of lines, so it is streamed to a temporary file beside the target and
renamed over it at the end (the same guarantee as :mod:`phi3v_data.atomic`, without holding the
whole file in memory): a reader never sees half of it, and a failed run leaves no file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from phi3v_data.atomic import TEMP_MARKER


@contextmanager
def atomic_stream(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through; it replaces ``path`` only when the block succeeds."""
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
