"""A scripted source for the runner's tests: each ``<split>/<name>.txt`` file is one item.

The file's content says what ``convert_item`` does: ``ok`` (one record, one PNG), ``reject``,
``raise``, ``unsafe`` (an image path out of images/), ``dangling`` (a record naming an image it does
not write), ``shared <n>`` (writes ``shared.png`` with colour ``n``: two items agree or conflict),
``interrupt`` (raises KeyboardInterrupt while the file ``<input>/armed`` exists, like a Ctrl-C in the
middle of a run). Importable by worker processes and by subprocesses (with this folder on the path).
Also :func:`snapshot`, the whole of an output folder for byte-identity checks.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path, PurePosixPath
from typing import ClassVar

from PIL import Image

from phi3v_data.converters.base import SPLITS, ConverterOptions, ImageFile, Item, ItemResult, Plan
from phi3v_data.errors import InputLayoutError


class ScriptedOptions(ConverterOptions):
    answer: str = "yes"
    """The assistant text of every record."""


class ScriptedConverter:
    """Test double: one item per text file, behaviour chosen by the file's content."""

    name: ClassVar[str] = "scripted"
    summary: ClassVar[str] = "runner test double"
    Options: ClassVar[type[ConverterOptions]] = ScriptedOptions

    def plan(self, input_dir: Path, options: ScriptedOptions) -> Plan:
        items = []
        for split in SPLITS:
            files = sorted((input_dir / split).glob("*.txt"))
            items += [
                Item(key=f"{split}/{path.name}", split=split, index=index, payload={"file": f"{split}/{path.name}"})
                for index, path in enumerate(files)
            ]
        if not items:
            raise InputLayoutError(f"expected <split>/<name>.txt files in {input_dir}")
        ignored = sum(1 for path in input_dir.rglob("*") if path.is_file() and path.suffix != ".txt")
        return Plan(items=items, ignored={"other": ignored} if ignored else {})

    def convert_item(self, item: Item, input_dir: Path, options: ScriptedOptions) -> ItemResult:
        command, _, argument = (input_dir / item.payload["file"]).read_text().strip().partition(" ")
        stem = PurePosixPath(item.key).stem
        own_image = ImageFile(f"{item.split}/{stem}.png", png(zlib.crc32(item.key.encode())))
        if command == "reject":
            return ItemResult.rejected("told to reject it")
        if command == "raise":
            raise RuntimeError("boom")
        if command == "interrupt" and (input_dir / "armed").exists():
            raise KeyboardInterrupt
        if command == "unsafe":
            return ItemResult(
                records=[record(item, ["../escape.png"], options)], images=[ImageFile("../escape.png", png(1))]
            )
        if command == "dangling":
            return ItemResult(
                records=[record(item, [own_image.relative_path, "nowhere.png"], options)], images=[own_image]
            )
        if command == "shared":
            shared = ImageFile("shared.png", png(int(argument)))
            return ItemResult(records=[record(item, [shared.relative_path], options)], images=[shared])
        return ItemResult(records=[record(item, [own_image.relative_path], options)], images=[own_image])


def record(item: Item, images: list[str], options: ScriptedOptions) -> dict:
    return {
        "id": f"{item.split}-{item.index:010d}",
        "source": "scripted",
        "conversations": [{"images": images, "user": "Is it there?", "assistant": options.answer}],
    }


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_items(root: Path, items: dict[str, str]) -> Path:
    """Create a raw tree: ``{"train/a.txt": "ok", ...}``."""
    for relative, content in items.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path, with its bytes."""
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
