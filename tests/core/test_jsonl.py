"""Streaming JSONL: physical line numbers (BOM, CRLF and blank lines included), valid records only."""

from __future__ import annotations

from pathlib import Path

from phi3v_data.jsonl import iter_line_images, iter_raw_lines, iter_records, line_images

VALID = b'{"id": "%s", "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}'


def test_raw_lines_are_numbered_physically_without_bom_or_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + VALID % b"1" + b"\r\n\r\n" + VALID % b"2" + b"\n" + b"last")
    lines = list(iter_raw_lines(path))
    assert [(line.number, line.data) for line in lines] == [
        (1, VALID % b"1"),
        (2, b""),
        (3, VALID % b"2"),
        (4, b"last"),
    ]


def test_records_keep_their_line_numbers_and_skip_what_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join([VALID % b"a", b"", b"{broken", VALID % b"b", b'{"id": 1}', b"[]"]) + b"\n")
    assert [(number, record.id) for number, record in iter_records(path)] == [(1, "a"), (4, "b")]


def test_line_images_reads_paths_in_conversation_order_and_nothing_from_other_lines(tmp_path: Path) -> None:
    two_turns = (
        b'{"id": "x", "conversations": [{"images": ["a.jpg", "b.jpg"], "user": "u", "assistant": "a"},'
        b' {"user": "u", "assistant": "a"}, {"images": ["c.jpg"], "user": "u", "assistant": "a"}]}'
    )
    assert line_images(two_turns) == ["a.jpg", "b.jpg", "c.jpg"]
    assert line_images(b'{"conversations": [{"imag\\u0065s": ["escaped.jpg"]}]}') == ["escaped.jpg"]
    for other in (b"", b"{oops", b"[]", b'{"conversations": "no"}', b'{"conversations": [1, {"images": "a"}]}'):
        assert line_images(other) == []
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + two_turns + b"\r\n\n" + VALID % b"2" + b"\n")
    assert list(iter_line_images(path)) == [["a.jpg", "b.jpg", "c.jpg"], [], []]
    path.write_bytes(b"")
    assert list(iter_line_images(path)) == []
