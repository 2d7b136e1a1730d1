"""Property tests: whatever the input, validation returns a report, problems carry their lines, and
no file outside the images root is ever opened."""

from __future__ import annotations

import json
import os
import string
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phi3v_data import validate
from phi3v_data.validation.lines import _diagnose, parse_line

# Codes that belong to the whole file; every other problem belongs to a line and must name it.
FILE_CODES = {"file-empty"}
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schema" / "record.schema.json").read_text())
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
# Whitespace on which regex engines disagree (\x1c-\x1f, U+FEFF) included on purpose, alone too.
texts = st.text(
    alphabet=string.printable + "éあ \u00a0\u2028\x1c\x1f\ufeff\x85", min_size=1, max_size=12
) | st.sampled_from(["", " ", "\x1c", "\x1f ", "\ufeff", "\x85", "\u3000", "\u200b"])
turns = st.fixed_dictionaries(
    {"user": texts, "assistant": texts},
    optional={
        "images": st.lists(st.sampled_from(["a.jpg", "sub/b.png", "../x.jpg", "/abs.jpg", "c\\d.jpg", ""]), max_size=3)
    },
)
records = st.fixed_dictionaries(
    {"id": texts, "source": texts, "conversations": st.lists(turns, max_size=3)},
    optional={"meta": st.none() | st.dictionaries(st.text(max_size=4), json_values, max_size=3)},
)


def mutations(value: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid-looking record with one field deleted, retyped or added, at the top or in a turn."""
    keys = [*sorted(value), "extra"]
    top = st.sampled_from(keys).flatmap(
        lambda key: st.one_of(
            st.just({k: v for k, v in value.items() if k != key}),
            json_values.map(lambda new: {**value, key: new}),
        )
    )
    if not value["conversations"]:
        return top
    in_turn = st.tuples(st.sampled_from(["images", "user", "assistant", "x"]), json_values).map(
        lambda change: {**value, "conversations": [{**value["conversations"][0], change[0]: change[1]}]}
    )
    return st.one_of(top, in_turn)


# Records as generated (often valid) and with one field broken.
candidate_records = records | records.flatmap(mutations)


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
