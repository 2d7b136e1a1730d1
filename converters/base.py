"""What a converter is: a planner over a raw layout, and one pure function per item.

A converter turns one raw dataset layout into the conversations/images format in two steps,
like a torchtune dataset builder around a per-row transform:

1. ``plan(input_dir, options) -> Plan`` scans the raw layout (cheap: names and annotation files, no
   pixels), raises :class:`phi3v_data.errors.InputLayoutError` when the folder is not the layout it
   expects, and lists the work as :class:`Item` objects in a deterministic order.
2. ``convert_item(item, options) -> ItemResult`` is pure: it reads only the item's own inputs and
   returns the records and the encoded image files, or a rejection. No global state and no writes,
   so a process pool here, or Ray Data on a cluster, can run it unchanged.

The runner (``phi3v_data.converters.runner``) writes images and JSONL atomically, resumes, and
validates the result. Third-party converters register under the entry-point group
``phi3v_data.converters``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

ENTRY_POINT_GROUP = "phi3v_data.converters"
SPLITS = ("train", "val", "test")


class ConverterOptions(BaseModel):
    """Base of every converter's options; each field becomes a ``--kebab-case`` CLI flag."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True, slots=True)
class Item:
    """One unit of work: one video, one page, one meme, one image pair.

    ``key`` is unique and stable across runs (the runner resumes by it) and names the input in
    rejections, so make it the input's path relative to the input folder (plus a question id when
    one file holds many items); ``index`` is the item's position within its split in plan order
    (used for ids like ``train-0000000042``). ``payload`` travels to worker processes (picklable)
    and is part of the job's identity on ``--resume`` (JSON-like values).
    """

    key: str
    split: str
    index: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An image to write at ``images/<relative_path>``, already encoded."""

    relative_path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What one item became: records (as JSON-ready dicts) and their images, or a rejection."""

    records: list[dict[str, Any]] = field(default_factory=list)
    images: list[ImageFile] = field(default_factory=list)
    rejection: str | None = None

    @classmethod
    def rejected(cls, reason: str) -> ItemResult:
        return cls(rejection=reason)


@dataclass(slots=True)
class Plan:
    """The items to convert and what the scan set aside.

    ``ignored`` counts inputs that are not data (READMEs, ``.DS_Store``, hidden files); ``skipped``
    counts data deliberately left out (e.g. unlabelled test questions); ``rejected`` holds
    ``(input, reason)`` pairs the scan already knows are broken.
    """

    items: list[Item]
    ignored: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class Converter(Protocol):
    """A source: ``phi3v-data convert <name>``."""

    name: ClassVar[str]
    """The SOURCE argument, e.g. ``docvqa``; also the prefix of the output JSONL files."""
    summary: ClassVar[str]
    """One line for ``phi3v-data convert --list``."""
    Options: ClassVar[type[ConverterOptions]]

    def plan(self, input_dir: Path, options: ConverterOptions) -> Plan: ...

    def convert_item(self, item: Item, input_dir: Path, options: ConverterOptions) -> ItemResult: ...
