"""Shared by the docvqa, hateful-memes and nlvr2 tests: fixture paths, running a converter, golden files.

``fixtures/<source>/`` and ``fixtures/golden/<source>/`` are made by ``scripts/make_dataset_fixtures.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from phi3v_data.converters.base import Converter, ConverterOptions, ItemResult, Plan
from phi3v_data.format import Record
from phi3v_data.placeholders import placeholder_faults

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def convert_all(converter: Converter, input_dir: Path, options: ConverterOptions) -> tuple[Plan, dict[str, ItemResult]]:
    """The plan and every item's result by key, through the pure functions only (no runner)."""
    plan = converter.plan(input_dir, options)
    return plan, {item.key: converter.convert_item(item, input_dir, options) for item in plan.items}


def records_of(results: dict[str, ItemResult]) -> dict[str, dict[str, Any]]:
    """Every record by id, each checked against the format and its placeholder rules."""
    records = {}
    for result in results.values():
        for record in result.records:
            assert not placeholder_faults(Record.model_validate(record))
            assert record["id"] not in records
            records[record["id"]] = record
    return records


def image_digests(images_dir: Path) -> str:
    """``sha256  path`` per file under ``images_dir``, sorted (the format of ``images.sha256``)."""
    files = sorted(path for path in images_dir.rglob("*") if path.is_file())
    return "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(images_dir).as_posix()}\n"
        for path in files
    )


def assert_matches_golden(source: str, out: Path) -> None:
    """OUT holds exactly the golden JSONL files, manifest and images of ``source``.

    The manifest's ``validation`` block is left out of the comparison: it is the validator's
    summary (tested with the validator) and changes whenever the validator learns a new check.
    """
    golden = FIXTURES / "golden" / source
    expected_files = sorted(path.name for path in golden.glob("*.jsonl"))
    assert sorted(path.name for path in out.glob("*.jsonl")) == expected_files
    for name in expected_files:
        assert (out / name).read_bytes() == (golden / name).read_bytes(), name
    manifest = json.loads((out / "manifest.json").read_text())
    expected_manifest = json.loads((golden / "manifest.json").read_text())
    del manifest["validation"]
    del expected_manifest["validation"]
    assert manifest == expected_manifest
    assert image_digests(out / "images") == (golden / "images.sha256").read_text()
