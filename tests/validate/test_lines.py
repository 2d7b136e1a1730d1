"""parse_line: the fast path and the diagnosis of every way a line can fail."""

from __future__ import annotations

import json

import pytest

from phi3v_data.validation.lines import field_path, parse_line

VALID = {"id": "a", "source": "s", "conversations": [{"images": ["x.jpg"], "user": "u", "assistant": "v"}]}


def line(value: object) -> bytes:
    return json.dumps(value).encode()


def faults(data: bytes) -> list[tuple[str, str]]:
    return [(fault.code, fault.message) for fault in parse_line(data).faults]


def test_a_valid_line_is_a_record_without_faults() -> None:
    parsed = parse_line(line(VALID) + b"\r")
    assert parsed.record is not None and parsed.record_id == "a" and parsed.faults == ()
    assert parsed.record.images == ["x.jpg"]


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"\xc3\x28", "line-not-utf8", "byte 0xc3 at column 1"),
        (b'{"id": "a",}', "line-invalid-json", "column 12"),
        (b'{"a": NaN}', "line-invalid-json", "NaN"),
        (b'{"a": -Infinity}', "line-invalid-json", "-Infinity"),
        (b'{"a": 1} {"b": 2}', "line-invalid-json", "Extra data"),
        (b'{"a": "\\udc00"}', "line-invalid-json", "lone UTF-16 surrogate"),
        (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "line-invalid-json", "deep"),
        (b"[1, 2]", "line-not-object", "array"),
        (b"null", "line-not-object", "null"),
        (b"3.5", "line-not-object", "number"),
    ],
)
def test_lines_that_are_not_json_objects(data: bytes, code: str, words: str) -> None:
    parsed = parse_line(data)
    assert parsed.record is None
    ((found_code, message),) = faults(data)
    assert found_code == code and words in message


def test_nan_hidden_in_meta_passes_pydantics_parser_but_not_the_validator() -> None:
    assert faults(line(VALID)[:-1] + b', "meta": {"score": NaN}}') == [
        ("line-invalid-json", "NaN is not valid JSON; write null or a string instead")
    ]


def test_nesting_that_pydantics_parser_refuses_is_invalid_even_if_pythons_json_accepts_it() -> None:
    nested = line(VALID)[:-1] + b', "meta": {"deep": ' + b"[" * 300 + b"]" * 300 + b"}}"
    json.loads(nested)  # Python's parser accepts this depth
    ((code, message),) = faults(nested)
    assert code == "line-invalid-json" and "recursion" in message


def test_schema_violations_name_each_field_path() -> None:
    value = {"id": "", "source": 7, "conversations": [{"images": ["a", 3], "user": " ", "assistant": "x"}, "turn"]}
    assert faults(line(value)) == [
        ("schema-violation", "id must not be empty"),
        ("schema-violation", "source must be a string"),
        ("schema-violation", "conversations[0].images[1] must be a string"),
        ("schema-violation", "conversations[0].user must not be blank"),
        ("schema-violation", "conversations[1] must be an object"),
    ]
    assert parse_line(line(value)).record_id is None


def test_an_invalid_record_keeps_its_id_for_the_duplicate_check() -> None:
    parsed = parse_line(line({"id": "kept", "source": "s"}))
    assert parsed.record is None and parsed.record_id == "kept"
    assert [code for code, _ in faults(line({"id": "kept", "source": "s"}))] == ["schema-violation"]


def test_unknown_fields_are_warnings_naming_their_path_with_or_without_schema_errors() -> None:
    valid_with_extras = {**VALID, "license": "x", "conversations": [{**VALID["conversations"][0], "w": 1}]}
    assert [message for _, message in faults(line(valid_with_extras))] == [
        "license is not a field of the format; the trainer ignores it",
        "conversations[0].w is not a field of the format; the trainer ignores it",
    ]
    invalid_with_extra = {"id": "a", "source": "s", "conversations": [], "x y": 1}
    assert [code for code, _ in faults(line(invalid_with_extra))] == ["field-unknown", "schema-violation"]


def test_field_names_from_the_data_cannot_inject_control_characters() -> None:
    assert field_path(("conversations", 0, "user")) == "conversations[0].user"
    assert field_path(("bad\n\x1b[31mname",)) == '["bad\\n\\u001b[31mname"]'
