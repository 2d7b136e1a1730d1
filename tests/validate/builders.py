"""Builders for small datasets written at test time (imported by the tests of this folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

MODEL_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "phi35v"


def record(
    record_id: str, *images: str, user: str = "What is shown?", assistant: str = "A test.", **extra: Any
) -> dict:
    """A valid record with one turn."""
    return {
        "id": record_id,
        "source": "test",
        "conversations": [{"images": list(images), "user": user, "assistant": assistant}],
        **extra,
    }


def write_jsonl(path: Path, *lines: dict | bytes | str) -> Path:
    """A JSONL file; dicts are dumped, bytes and str written as they are (one per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = [
        line if isinstance(line, bytes) else (line.encode() if isinstance(line, str) else json.dumps(line).encode())
        for line in lines
    ]
    path.write_bytes(b"".join(line + b"\n" for line in encoded))
    return path


def write_image(path: Path, size: tuple[int, int] = (32, 24), image_format: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 60, 30)).save(path, image_format)
    return path
