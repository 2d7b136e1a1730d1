"""Property tests: whatever the input, validation returns a report, problems carry their lines, and
no file outside the images root is ever opened."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import candidate_records, json_values

from phi3v_data import validate
from phi3v_data.validation.lines import _diagnose, parse_line

# Codes that belong to the whole file; every other problem belongs to a line and must name it.
FILE_CODES = {"file-empty"}
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schema" / "record.schema.json").read_text())
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_report(path: Path, physical_lines: int) -> None:
    report = validate([path], images="none", workers=1)
    for problem in report.problems:
        if problem.code in FILE_CODES:
            assert problem.line is None
        else:
            assert problem.line is not None and 1 <= problem.line <= max(1, physical_lines), problem
    assert report.records <= physical_lines


def write_and_check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.jsonl"
        path.write_bytes(data)
        check_report(path, data.count(b"\n") + (not data.endswith(b"\n")))


@PROPERTY_SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    write_and_check(data)


@PROPERTY_SETTINGS
@given(st.lists(json_values, min_size=1, max_size=5))
def test_arbitrary_json_values_never_raise(values: list[Any]) -> None:
    write_and_check(b"\n".join(json.dumps(value).encode() for value in values))


@PROPERTY_SETTINGS
@given(candidate_records)
def test_mutated_records_never_raise_and_both_parsing_paths_agree(value: dict[str, Any]) -> None:
    data = json.dumps(value).encode()
    write_and_check(data + b"\n")
    fast, slow = parse_line(data), _diagnose(data)
    assert (fast.record, fast.record_id) == (slow.record, slow.record_id)
    assert sorted(fast.faults) == sorted(slow.faults)


@PROPERTY_SETTINGS
@given(candidate_records)
def test_the_json_schema_accepts_exactly_what_the_models_accept(value: dict[str, Any]) -> None:
    parsed = parse_line(json.dumps(value).encode())
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(value) == (parsed.record is not None)


# Every file opened while a validation runs, so the test below can check where they are.
_opened: list[str] | None = None


def _record_opens(event: str, arguments: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and isinstance(arguments[0], (str, bytes, os.PathLike)):
        _opened.append(os.fsdecode(arguments[0]))


sys.addaudithook(_record_opens)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An images root with symlinks leading out of it, and image files outside it worth stealing."""
    folder = tmp_path_factory.mktemp("sandbox")
    root = folder / "images"
    (root / "sub").mkdir(parents=True)
    from PIL import Image

    for target in (root / "in.jpg", root / "sub" / "in2.jpg", folder / "secret.jpg"):
        Image.new("RGB", (8, 8)).save(target, "JPEG")
    os.symlink("../secret.jpg", root / "out.jpg")
    os.symlink("..", root / "up")
    os.symlink(str(folder), root / "sub" / "abs")
    os.symlink("../in.jpg", root / "sub" / "back.jpg")
    return folder


image_paths = st.lists(
    st.sampled_from(["in.jpg", "sub/in2.jpg", "out.jpg", "up/secret.jpg", "sub/abs/secret.jpg", "sub/back.jpg",
                     "../secret.jpg", "sub/../../secret.jpg", "/etc/passwd", "missing.jpg", "sub", "up/images/in.jpg"])
    | st.text(alphabet="ab./\\:", max_size=10),
    max_size=4,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=image_paths, mode=st.sampled_from(["decode", "header", "exists"]))
def test_no_file_outside_the_images_root_is_ever_opened(sandbox: Path, images: list[str], mode: str) -> None:
    global _opened
    jsonl = sandbox / "d.jsonl"
    record = {"id": "r", "source": "s", "conversations": [{"images": images, "user": "u", "assistant": "a"}]}
    jsonl.write_text(json.dumps(record) + "\n")
    root = (sandbox / "images").resolve()
    _opened = []
    try:
        validate([jsonl], images=mode, workers=1)  # type: ignore[arg-type]
        opened = [Path(path).resolve() for path in _opened]
    finally:
        _opened = None
    sandboxed = [path for path in opened if sandbox.resolve() in path.parents]
    assert all(path == jsonl.resolve() or root in path.parents for path in sandboxed), sandboxed
