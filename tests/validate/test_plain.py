"""The fast path: it accepts only what pydantic accepts without a word, and never changes a report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from builders import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import candidate_records, common_records, mutations

from phi3v_data import validate
from phi3v_data.format import Record, Turn
from phi3v_data.paths import path_fault
from phi3v_data.placeholders import placeholder_faults
from phi3v_data.validation import worker
from phi3v_data.validation.lines import parse_line
from phi3v_data.validation.plain import plain_record

# Lines the fast path takes, lines it is unsure of, and lines it takes but for one change.
any_records = candidate_records | common_records | common_records.flatmap(mutations)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UCF = record("train-0001", "train/Archery/v_Archery_g01_c01.0.jpg", "train/Archery/v_Archery_g01_c01.1.jpg")


def line(value: object, **dumps: Any) -> bytes:
    return json.dumps(value, **dumps).encode()


def with_turn(**changes: Any) -> dict[str, Any]:
    return {**UCF, "conversations": [{**UCF["conversations"][0], **changes}]}


def test_the_fields_the_fast_path_knows_are_the_models() -> None:
    assert set(Record.model_fields) == {"id", "source", "conversations", "meta"}
    assert set(Turn.model_fields) == {"images", "user", "assistant"}


def test_a_plain_record_gives_its_id_and_images_in_order() -> None:
    turn = UCF["conversations"][0]
    two_turns = {**UCF, "conversations": [turn, {"user": "And?", "assistant": "No."}, turn]}
    assert plain_record(line(UCF)) == ("train-0001", UCF["conversations"][0]["images"])
    assert plain_record(line(two_turns)) == ("train-0001", UCF["conversations"][0]["images"] * 2)
    assert plain_record(line(with_turn(images=[]))) == ("train-0001", [])
    assert plain_record(line({**UCF, "meta": None})) is not None
    assert plain_record(line({**UCF, "meta": {}})) is not None


@pytest.mark.parametrize(
    "value",
    [
        {**UCF, "extra": 1},  # an unknown field is a warning
        with_turn(x=1),
        {**UCF, "conversations": [{"user": "u", "assistant": "a", "x": []}]},  # three fields, one unknown
        {**UCF, "meta": {"answers": ["a"]}},  # pydantic rechecks the numbers a non-empty meta may hold
        {**UCF, "id": " padded"},  # not blank, but not plainly so: pydantic decides
        {**UCF, "source": "étude"},
        {**UCF, "id": 7},
        {**UCF, "conversations": []},
        {**UCF, "conversations": {}},
        with_turn(user="<|image_1|> What is shown?"),  # the placeholder rules read the Record
        with_turn(assistant="see <|image_1|>"),
        with_turn(images="a.jpg"),
        with_turn(images=["a.jpg", 3]),
        with_turn(images=["a.jpg", ""]),
        with_turn(images=["/abs.jpg"]),
        with_turn(images=["a\\b.jpg"]),
        with_turn(images=["C:b.jpg"]),
        with_turn(images=["a/../b.jpg"]),
        with_turn(images=["./a.jpg"]),  # fine, but sorts before "0": the careful path decides
        [UCF],
    ],
)
def test_anything_not_plainly_fine_goes_to_the_careful_path(value: object) -> None:
    assert plain_record(line(value)) is None


@pytest.mark.parametrize("data", [b'{"a": NaN}', b"\xff", line(UCF) + b" x", b"\xef\xbb\xbf" + line(UCF), b""])
def test_lines_orjson_refuses_go_to_the_careful_path(data: bytes) -> None:
    assert plain_record(data) is None


def test_a_repeated_key_means_what_it_means_to_pydantic() -> None:
    data = line(UCF)[:-1] + b', "id": "later"}'
    assert plain_record(data) == ("later", UCF["conversations"][0]["images"])
    assert parse_line(data).record_id == "later"


@PROPERTY_SETTINGS
@given(any_records, st.booleans())
def test_what_the_fast_path_accepts_pydantic_accepts_without_a_word(value: dict[str, Any], ascii_only: bool) -> None:
    data = line(value, ensure_ascii=ascii_only)
    plain = plain_record(data)
    if plain is None:
        return
    parsed = parse_line(data)
    assert parsed.record is not None and parsed.faults == ()
    assert plain == (parsed.record.id, parsed.record.images)
    assert placeholder_faults(parsed.record) == []
    assert [path_fault(path) for path in plain[1]] == [None] * len(plain[1])


@PROPERTY_SETTINGS
@given(st.lists(any_records | st.just(UCF), min_size=1, max_size=4))
def test_the_report_is_the_same_with_and_without_the_fast_path(values: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.jsonl"
        path.write_bytes(b"".join(line(value) + b"\n" for value in values))
        fast = validate([path], images="none", workers=1)
        with mock.patch.object(worker, "plain_record", worker._unsure):
            careful = validate([path], images="none", workers=1)
    assert fast == careful
