"""The conversations/images JSONL format, as pydantic models: the single source of truth.

One line of a dataset file is one :class:`Record`::

    {"id": "val-0000000300", "source": "ucf101",
     "conversations": [{"images": ["val/BabyCrawling/v_BabyCrawling_g18_c04.0.jpg", ...],
                        "user": "Classify the video into one of the following classes: ...",
                        "assistant": "BabyCrawling"}]}

The JSON Schema in ``schema/`` is generated from these models (``scripts/generate.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = "1.0"
SCHEMA_ID = "https://github.com/phi3v-data/phi3v-data/schema/record.schema.json"

# "Holds a character that is not whitespace". Regex engines disagree on what whitespace is: Python's
# includes \x1c-\x1f, JavaScript's U+FEFF, pydantic's (Rust) neither; naming both makes pydantic,
# Python's jsonschema and JavaScript validators of the generated schema accept the same strings.
NonBlankStr = Annotated[str, Field(min_length=1, pattern=r"[^\s\x1c-\x1f\ufeff]")]


class _FormatModel(BaseModel):
    # Unknown fields are kept (and reported as warnings by the validator), never rejected.
    # Strict: a number is not an id, a string is not a list.
    model_config = ConfigDict(extra="allow", strict=True, use_attribute_docstrings=True, frozen=True)


class Turn(_FormatModel):
    """One exchange: the user's message with its images, and the answer the model learns to give."""

    images: list[Annotated[str, Field(min_length=1)]] = []
    """Image paths relative to the dataset's images root, POSIX separators, in the order they are shown."""

    user: NonBlankStr
    """The user's text. It may place the images with explicit <|image_k|> tags numbered across the record;
    without tags, the turn's images are put before the text."""

    assistant: NonBlankStr
    """The answer the model is trained to produce."""


class Record(_FormatModel):
    """One training example: a conversation of one or more turns."""

    id: NonBlankStr
    """Unique within the dataset (all JSONL files of a dataset directory)."""

    source: NonBlankStr
    """Where the record comes from, e.g. the converter's name ("ucf101") or your own dataset's name."""

    conversations: Annotated[list[Turn], Field(min_length=1)]
    """The turns, in order."""

    meta: dict[str, Any] | None = None
    """Free-form data kept with the record and ignored by training, e.g. every DocVQA answer for ANLS."""

    @property
    def images(self) -> list[str]:
        """Every image of the record, in conversation order."""
        return [path for turn in self.conversations for path in turn.images]


def record_json_schema() -> dict[str, Any]:
    """The canonical JSON Schema (draft 2020-12) of one JSONL line."""
    schema = Record.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "x-format-version": FORMAT_VERSION,
        **schema,
    }
