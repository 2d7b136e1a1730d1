"""The fast path for the common line: orjson and a conservative check in plain Python.

In a real dataset nearly every line is a valid record without unknown fields, image tags or odd
paths, and pydantic's validation is then the costliest step of ``--images none``. This check
accepts a line only when it is plainly valid under the models of :mod:`phi3v_data.format` and
nothing about it needs reporting; everything else returns None and goes to
:func:`~phi3v_data.validation.lines.parse_line`, which stays the authority for every message.
It never imports pydantic, so a clean file is validated without loading it.
"""

from __future__ import annotations

import re

from orjson import JSONDecodeError, loads

from phi3v_data.placeholders import TAG_START  # texts with a tag go to the careful path

# A two-character needle: the regex engine jumps between occurrences of its first character,
# twice as fast here as `in`.
_DOUBLE_DOT = re.compile(r"\.\.").search


def plain_record(data: bytes) -> tuple[str, list[str]] | None:
    """The id and every image path (in order) of a plainly valid line; None when unsure.

    Accepted lines have exactly the format's fields with exactly their JSON types, ``meta``
    absent, null or empty (pydantic also rechecks the numbers in a non-empty one), texts without
    ``<|image_`` tags, and image paths that plainly keep the path rules (nothing like ``\\``,
    ``:``, NUL, ``..`` or a leading ``/``), so the caller need not check the paths again.
    """
    try:
        value = loads(data)
    except JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    # The fields of Record (a test checks them against the model): with these three present, the
    # size tells whether there is anything else. Cheaper than comparing key sets.
    try:
        record_id, source, turns = value["id"], value["source"], value["conversations"]
    except KeyError:
        return None
    size = len(value)
    if size != 3 and not (size == 4 and "meta" in value and value["meta"] in (None, {})):
        return None
    if not (_plain_text(record_id) and _plain_text(source)) or type(turns) is not list or not turns:
        return None
    if len(turns) == 1:  # the usual case, without building a new list
        images = _plain_turn_images(turns[0])
    else:
        images = []
        for turn in turns:
            turn_images = _plain_turn_images(turn)
            if turn_images is None:
                return None
            images += turn_images
    if images is None or not _plain_paths(images):
        return None
    return record_id, images


def _plain_text(text: object) -> bool:
    """A string whose first character is printable ASCII: non-empty, and non-blank for every regex engine."""
    return type(text) is str and "!" <= text[:1] <= "~"


def _plain_turn_images(turn: object) -> list[str] | None:
    """The images of a plainly valid, tag-free turn (not yet checked to be strings); None when unsure."""
    if type(turn) is not dict:
        return None
    # The fields of Turn, as for the record above.
    try:
        user, assistant = turn["user"], turn["assistant"]
    except KeyError:
        return None
    if len(turn) == 2:
        images = []
    else:
        images = turn.get("images")
        if len(turn) != 3 or type(images) is not list:
            return None
    if not (_plain_text(user) and _plain_text(assistant)) or TAG_START in user or TAG_START in assistant:
        return None
    return images


def _plain_paths(images: list[str]) -> bool:
    """Whether every item is a non-empty string that no path rule can object to."""
    if not images:
        return True
    try:
        joined = "".join(images)  # join also checks the types: it takes nothing but strings
    except TypeError:
        return False
    # When the smallest path sorts at or after "0", no path is empty or starts with "/" (those
    # starting with ".", "-" or a space go to the careful path too, which costs nothing but time).
    return min(images) >= "0" and not ("\\" in joined or ":" in joined or "\x00" in joined or _DOUBLE_DOT(joined))
