"""The ``<|image_k|>`` placeholder rules, shared by the validator and the prompt builder.

A record either places every image with explicit tags, numbered 1..n across the whole
conversation in order, each image once and in the turn that carries it; or it has no tags at all,
and the prompt builder puts a turn's tags before its text (the Phi-3 cookbook's convention).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from phi3v_data.problems import Fault

if TYPE_CHECKING:  # the validator's fast path must not pay for importing pydantic
    from phi3v_data.format import Record

IMAGE_TAG = re.compile(r"<\|image_(\d+)\|>")
# Every tag starts so: a substring test rules most texts out before any regex runs.
TAG_START = "<|image_"


def has_tags(record: Record) -> bool:
    """Whether any user text of the record places its images explicitly."""
    return any(IMAGE_TAG.search(turn.user) for turn in record.conversations)


def placeholder_faults(record: Record) -> list[Fault]:
    """Every way the record's tags break the rules (empty when they are fine or absent)."""
    if not any(TAG_START in turn.user or TAG_START in turn.assistant for turn in record.conversations):
        return []
    faults = [
        Fault(
            "placeholder-in-assistant",
            f"conversations[{index}].assistant holds {IMAGE_TAG.search(turn.assistant).group(0)}; "
            "it will be trained as plain text",
        )
        for index, turn in enumerate(record.conversations)
        if IMAGE_TAG.search(turn.assistant)
    ]
    if not has_tags(record):
        return faults
    first = 1
    for index, turn in enumerate(record.conversations):
        expected = list(range(first, first + len(turn.images)))
        found = [int(number) for number in IMAGE_TAG.findall(turn.user)]
        if found != expected:
            faults.append(
                Fault(
                    "placeholder-mismatch",
                    f"conversations[{index}].user has tags {_tags(found)} but its {len(turn.images)} image(s) "
                    f"need {_tags(expected)}: once a record uses tags, every image needs one, numbered "
                    "across the conversation",
                )
            )
        first += len(turn.images)
    return faults


def user_contents(record: Record) -> list[str]:
    """Each turn's user text with its image tags: explicit ones kept, implicit ones put before the text."""
    if has_tags(record):
        return [turn.user for turn in record.conversations]
    contents, first = [], 1
    for turn in record.conversations:
        tags = "".join(f"<|image_{number}|>" for number in range(first, first + len(turn.images)))
        contents.append(f"{tags}\n{turn.user}" if tags else turn.user)
        first += len(turn.images)
    return contents


def _tags(numbers: list[int]) -> str:
    return "[" + ", ".join(f"<|image_{number}|>" for number in numbers) + "]" if numbers else "none"
