"""One JSONL line to a :class:`Record`, or the reasons it is not one.

The common case (a valid record without unknown fields) costs one pass of pydantic's JSON parser.
Everything else takes a slower path that decodes, parses and validates in steps, so each problem
gets its own code and a message naming the field. The trainer reads lines with the same function
(:func:`phi3v_data.jsonl.iter_records`), so a line the validator accepts is a line the trainer loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import from_json

from phi3v_data.codes import ProblemCode
from phi3v_data.format import Record, Turn
from phi3v_data.problems import Fault

_RECORD_FIELDS = frozenset(Record.model_fields)
_TURN_FIELDS = frozenset(Turn.model_fields)

# pydantic's wording, rephrased where it speaks of Python types instead of JSON ones.
_SCHEMA_MESSAGES = {
    "missing": "is required",
    "string_pattern_mismatch": "must not be blank",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "string_type": "must be a string",
}


# A named tuple rather than a frozen dataclass: one is built per line, and they build several times faster.
class ParsedLine(NamedTuple):
    """A line's record (None unless it matches the schema), its id if it has one, and its faults."""

    record: Record | None
    record_id: str | None
    faults: tuple[Fault, ...] = ()


class _NonFiniteNumber(ValueError):
    pass


_validate_record_json = Record.__pydantic_validator__.validate_json


def _clean_record(data: bytes) -> Record | None:
    """The line's record when it is valid and has nothing to warn about; None sends it to :func:`_diagnose`.

    One pass of pydantic's JSON parser, no Python-level parsing.
    """
    try:
        record: Record = _validate_record_json(data)
    except ValidationError:
        return None
    if record.__pydantic_extra__:
        return None
    for turn in record.conversations:
        if turn.__pydantic_extra__:
            return None
    # pydantic's parser accepts NaN and Infinity, which can only hide where any value is allowed.
    if record.meta and _strict_json_error(data):
        return None
    return record


def parse_line(data: bytes) -> ParsedLine:
    """Parse and schema-check one line (without its line end). Never raises for bad data."""
    record = _clean_record(data)
    if record is not None:
        return ParsedLine(record, record.id)
    return _diagnose(data)


def _strict_json_error(data: bytes) -> str | None:
    """Why pydantic's parser, without NaN and Infinity, rejects the line (None if it accepts it)."""
    try:
        from_json(data, allow_inf_nan=False)
    except ValueError as error:
        return str(error)
    return None


def _diagnose(data: bytes) -> ParsedLine:
    """The slow path: find the first step a line fails and say why."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return _fault(
            "line-not-utf8",
            f"byte 0x{data[error.start]:02x} at column {error.start + 1} is not UTF-8; re-save the file as UTF-8",
        )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except _NonFiniteNumber as error:
        return _fault("line-invalid-json", f"{error} is not valid JSON; write null or a string instead")
    except json.JSONDecodeError as error:
        return _fault("line-invalid-json", f"{error.msg} at column {error.colno}")
    except RecursionError:
        return _fault("line-invalid-json", "the JSON nests too deeply to read")
    if not isinstance(value, dict):
        return _fault("line-not-object", f"the line is a JSON {json_type_name(value)}; each line must be one object")
    # Both parsers must accept the line, so that the trainer's loader reads what passed here.
    complaint = _strict_json_error(data)
    if complaint:
        return _fault("line-invalid-json", _explain(value, complaint))
    given_id = value.get("id")
    record_id = given_id if isinstance(given_id, str) and given_id else None  # kept for the duplicate check
    faults = list(_unknown_fields_of_object(value))
    try:
        record = Record.model_validate(value)
    except ValidationError as error:
        faults += [Fault("schema-violation", _schema_message(detail)) for detail in error.errors()]
        return ParsedLine(None, record_id, tuple(faults))
    return ParsedLine(record, record.id, tuple(faults))


def _fault(code: ProblemCode, message: str) -> ParsedLine:
    return ParsedLine(None, None, (Fault(code, message),))


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(name)


def _explain(value: Any, complaint: str) -> str:
    if any(_has_lone_surrogate(text) for text in _strings_in(value)):
        return "a string escapes a lone UTF-16 surrogate (e.g. \\ud800), which is not Unicode text"
    return complaint


def _strings_in(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages: object, array, string, ..."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def field_path(location: tuple[int | str, ...]) -> str:
    """``('conversations', 0, 'user')`` as ``conversations[0].user``.

    A name that is not a plain identifier is quoted as JSON (``["a b"]``), so a field name from the
    data can never smuggle line breaks or terminal escapes into a report.
    """
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.isidentifier():
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path or "the record"


def _schema_message(detail: Any) -> str:
    wording = _SCHEMA_MESSAGES.get(detail["type"]) or detail["msg"][:1].lower() + detail["msg"][1:]
    return f"{field_path(detail['loc'])} {wording}"


def _unknown_fields_of_object(value: dict[str, Any]) -> Iterator[Fault]:
    for name in value:
        if name not in _RECORD_FIELDS:
            yield _unknown(field_path((name,)))
    turns = value.get("conversations")
    if isinstance(turns, list):
        for index, turn in enumerate(turns):
            if isinstance(turn, dict):
                for name in turn:
                    if name not in _TURN_FIELDS:
                        yield _unknown(field_path(("conversations", index, name)))


def _unknown(path: str) -> Fault:
    return Fault("field-unknown", f"{path} is not a field of the format; the trainer ignores it")
