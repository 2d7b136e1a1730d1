"""Split leakage: the same image used by two JSONL files (splits) of one dataset.

While the files stream past, only a 64-bit key per image reference is kept (8 bytes, not the path),
so memory stays small on datasets of millions of frames. When two files share keys, which is rare,
those files are read again to name each shared image and the lines that use it; hash collisions
are ruled out there by comparing the paths themselves.
"""

from __future__ import annotations

import posixpath
from array import array
from collections.abc import Iterator, Sequence

from phi3v_data.jsonl import iter_records
from phi3v_data.problems import Problem
from phi3v_data.validation.inputs import InputFile
from phi3v_data.validation.worker import image_key


def shared_keys(keys_per_file: Sequence[Sequence[array[int]]]) -> set[int]:
    """The image keys that occur in more than one file."""
    import numpy  # only datasets of several files pay for the import

    seen = numpy.empty(0, dtype=numpy.uint64)
    shared: set[int] = set()
    for chunks in keys_per_file:
        if not chunks:  # an empty file has no chunk, so no keys
            continue
        keys = numpy.unique(numpy.concatenate([numpy.frombuffer(chunk, dtype=numpy.uint64) for chunk in chunks]))
        shared.update(int(key) for key in keys[numpy.isin(keys, seen, assume_unique=True)])
        seen = numpy.union1d(seen, keys)
    return shared


def leak_problems(files: Sequence[InputFile], shared: set[int]) -> Iterator[tuple[int, Problem]]:
    """A warning (with the file's position in ``files``) for each line using an image an earlier file used."""
    first_use: dict[str, tuple[int, str, int]] = {}
    for position, file in enumerate(files):
        for number, record in iter_records(file.path):  # pydantic loads only when images are shared
            for relative in record.images:
                if image_key(relative) not in shared:
                    continue
                normal = posixpath.normpath(relative)
                earlier = first_use.setdefault(normal, (position, file.display_name, number))
                if earlier[0] != position:
                    message = (
                        f"{relative!r} is also used by {earlier[1]}:{earlier[2]}; an image in two splits "
                        "leaks between them (evaluation on it is not blind)"
                    )
                    yield position, Problem("image-split-leakage", message, file.display_name, number, record.id)
