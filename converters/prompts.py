"""The classification conversation that the ``ucf101`` and ``folder`` sources write, and prompt checks.

The cookbook asks ``Classify the video into one of the following classes: A, B, C.`` with the
classes sorted and the class name as the answer. ``--prompt`` replaces the template; the literal
``{classes}`` in it becomes the list (other braces are kept as written). Sources whose prompt must
hold the item's own text (``{text}``, ``{sentence}``) check it with :func:`require_slot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

CLASSES_FIELD = "{classes}"
VIDEO_PROMPT = f"Classify the video into one of the following classes: {CLASSES_FIELD}."
IMAGE_PROMPT = f"Classify the image into one of the following classes: {CLASSES_FIELD}."


def classification_prompt(template: str, classes: Iterable[str]) -> str:
    """The user text: ``template`` with ``{classes}`` replaced by the sorted, comma-joined classes."""
    return template.replace(CLASSES_FIELD, ", ".join(sorted(classes)))


def require_slot(prompt: str, slot: str, what_goes_there: str) -> str:
    """``prompt`` if it contains ``{slot}``, for an options validator; else a ValueError saying what goes there."""
    if f"{{{slot}}}" not in prompt:
        raise ValueError(f"the prompt must contain {{{slot}}}, where {what_goes_there} goes")
    return prompt


def record_id(split: str, index: int) -> str:
    """The cookbook's id: the split and the item's 10-digit position, e.g. ``val-0000000003``."""
    return f"{split}-{index:010d}"


def classification_record(
    *, split: str, index: int, source: str, images: Sequence[str], user: str, label: str
) -> dict[str, Any]:
    """One single-turn record whose answer is the class name."""
    return {
        "id": record_id(split, index),
        "source": source,
        "conversations": [{"images": list(images), "user": user, "assistant": label}],
    }
