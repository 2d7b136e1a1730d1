"""What planners share: listing a raw folder, reading JSON-lines annotations, collecting the plan.

A planner lists the folder once: the listing answers "does this image exist?" without a ``stat``
per image, and tells which files the conversion never used, so that they are counted as ignored
instead of silently dropped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from phi3v_data.converters.base import Item, Plan
from phi3v_data.jsonl import iter_raw_lines
from phi3v_data.validation.lines import json_type_name

# Metadata that operating systems and archivers leave behind; never data, whatever the source.
_SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True, slots=True)
class FolderListing:
    """The visible files and folders under a root, as relative POSIX paths."""

    files: frozenset[str]
    folders: frozenset[str]
    hidden: int
    """Hidden entries (dotfiles such as ``.DS_Store``, ``__MACOSX/``, ``Thumbs.db``), not descended into."""

    def ignored(self, used: set[str]) -> dict[str, int]:
        """``Plan.ignored`` counts: hidden entries, and visible files the conversion did not use."""
        counts = {"hidden": self.hidden, "unused": len(self.files - used)}
        return {kind: count for kind, count in counts.items() if count}

    def describe(self, limit: int = 3) -> str:
        """What the folder holds, for an error message: e.g. ``12 .avi files, 1 .txt file``."""
        suffixes = Counter(PurePosixPath(path).suffix.lower() or "extension-less" for path in self.files)
        if not suffixes:
            return "no files"
        return ", ".join(
            f"{count} {suffix} file{'s' if count > 1 else ''}" for suffix, count in suffixes.most_common(limit)
        )


def _is_hidden(name: str) -> bool:
    """Whether a file or folder name is system metadata rather than data."""
    return name.startswith(".") or name in _SYSTEM_NAMES


def list_folder(root: Path) -> FolderListing:
    """Every visible file and folder under ``root``; symlinked folders are followed once."""
    files: set[str] = set()
    folders: set[str] = set()
    hidden = 0
    visited: set[tuple[int, int]] = set()
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        status = folder.stat()
        if (status.st_dev, status.st_ino) in visited:  # a symlink loop, or two links to one folder
            continue
        visited.add((status.st_dev, status.st_ino))
        with os.scandir(folder) as entries:
            for entry in entries:
                if _is_hidden(entry.name):
                    hidden += 1
                    continue
                relative = f"{prefix}{entry.name}"
                if entry.is_dir():
                    folders.add(relative)
                    pending.append((Path(entry.path), f"{relative}/"))
                elif entry.is_file():
                    files.add(relative)
    return FolderListing(frozenset(files), frozenset(folders), hidden)


@dataclass(frozen=True, slots=True)
class JsonLine:
    """One non-blank line of a JSON-lines file: the object on it, or why there is none."""

    number: int
    row: dict[str, Any] | None
    error: str | None = None


def read_json_lines(path: Path) -> Iterator[JsonLine]:
    """Every non-blank line of a JSON-lines file, numbered from 1 as an editor counts them."""
    for line in iter_raw_lines(path):
        if not line.data.strip():
            continue
        try:
            value = json.loads(line.data.decode("utf-8"))
        except UnicodeDecodeError:
            yield JsonLine(line.number, None, "the line is not valid UTF-8")
            continue
        except json.JSONDecodeError as error:
            yield JsonLine(line.number, None, f"not valid JSON: {error.msg} (column {error.colno})")
            continue
        if isinstance(value, dict):
            yield JsonLine(line.number, value)
        else:
            yield JsonLine(line.number, None, f"a JSON {json_type_name(value)}, not an object")


@dataclass(slots=True)
class PlanBuilder:
    """Collects a plan: items numbered within their split in the order added, and what was set aside."""

    plan: Plan = field(default_factory=lambda: Plan(items=[]))
    _added: Counter[str] = field(default_factory=Counter)

    def add(self, split: str, key: str, payload: dict[str, Any]) -> None:
        self.plan.items.append(Item(key=key, split=split, index=self._added[split], payload=payload))
        self._added[split] += 1

    def reject(self, source: str, reason: str) -> None:
        """An input known to be broken: a file (``img/01235.png``) or a line (``dev.jsonl:12``), and why."""
        self.plan.rejected.append((source, reason))

    def skip(self, kind: str, count: int = 1) -> None:
        """Count pieces of data deliberately left out, e.g. ``unlabelled``; a count of 0 records nothing."""
        if count:
            self.plan.skipped[kind] = self.plan.skipped.get(kind, 0) + count

    def finish(self, listing: FolderListing, used: set[str]) -> Plan:
        self.plan.ignored = listing.ignored(used)
        return self.plan
