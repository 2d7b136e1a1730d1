"""Shared by the converter tests: fixture paths, running a converter, golden files.

``fixtures/<source>/`` and ``fixtures/golden/<source>/`` of docvqa, hateful-memes and nlvr2 are made
by ``scripts/make_dataset_fixtures.py``; it and the tests read a conversion the way
``scripts/make_converter_goldens.py`` (loaded here as ``goldens``) does for folder and ucf101.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from phi3v_data.converters.base import Converter, ConverterOptions, ItemResult, Plan
from phi3v_data.format import Record
from phi3v_data.placeholders import placeholder_faults

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"


def _load_golden_script():
    path = REPO / "scripts" / "make_converter_goldens.py"
    spec = importlib.util.spec_from_file_location("make_converter_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


goldens = _load_golden_script()


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


def without_validation(manifest: bytes) -> dict[str, Any]:
    """A manifest without its ``validation`` block: the validator's summary (tested with the
    validator), which changes whenever the validator learns a new check."""
    document = json.loads(manifest)
    del document["validation"]
    return document


def assert_matches_golden(source: str, out: Path) -> None:
    """OUT holds exactly the golden JSONL files, manifest (but its validation block) and images of ``source``."""
    golden = FIXTURES / "golden" / source
    written = goldens.golden_files(out)
    assert sorted(written) == sorted(path.name for path in golden.iterdir())
    for name, data in written.items():
        if name == "manifest.json":
            assert without_validation(data) == without_validation((golden / name).read_bytes())
        else:
            assert data == (golden / name).read_bytes(), name
