"""Shared by the converter tests: fixture paths, running a converter, golden files.

``fixtures/<source>/`` and ``fixtures/golden/<source>/`` of docvqa, hateful-memes and nlvr2 are made
by ``scripts/make_dataset_fixtures.py``; it and the tests read a conversion the way
``scripts/make_converter_goldens.py`` (loaded here as ``goldens``) does for folder and ucf101.
"""

from __future__ import annotations

import hashlib
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


def comparable_manifest(manifest: bytes) -> dict[str, Any]:
    """A manifest without its ``validation`` block (the validator's summary, tested with the validator,
    which changes whenever the validator learns a new check) and with only the paths of its images:
    their sizes and sha256s are those of the bytes written, which for encoded frames depend on the
    library builds (:func:`assert_manifest_lists_the_images` checks them against the files)."""
    document = json.loads(manifest)
    del document["validation"]
    document["images"] = list(document["images"])
    return document


def assert_manifest_lists_the_images(out: Path) -> None:
    """The manifest lists every image the JSONL files name, with the size and sha256 of the file written."""
    listed = json.loads((out / "manifest.json").read_bytes())["images"]
    named = {path for jsonl in out.glob("*.jsonl") for line in jsonl.read_bytes().splitlines()
             for turn in json.loads(line)["conversations"] for path in turn.get("images", [])}  # fmt: skip
    assert list(listed) == sorted(named)
    for path, entry in listed.items():
        data = (out / "images" / path).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, path


def assert_matches_golden(source: str, out: Path) -> None:
    """OUT holds exactly the golden JSONL files, manifest (but its validation block) and images of ``source``."""
    golden = FIXTURES / "golden" / source
    written = goldens.golden_files(out)
    assert sorted(written) == sorted(path.name for path in golden.iterdir())
    for name, data in written.items():
        if name == "manifest.json":
            assert comparable_manifest(data) == comparable_manifest((golden / name).read_bytes())
        else:
            assert data == (golden / name).read_bytes(), name
    assert_manifest_lists_the_images(out)
