"""Chunks cover a file exactly, never split a line, and together give back every physical line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from phi3v_data.validation.chunks import chunk_ranges, read_chunk


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([b"", b"{}", b"x" * 50, b"\r", b"\xef\xbb\xbf{}", b"\xff"]), max_size=12).map(b"\n".join)
    | st.binary(max_size=300),
    st.integers(min_value=1, max_value=64),
)
def test_ranges_are_contiguous_line_aligned_and_lose_nothing(data: bytes, chunk_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.jsonl"
        path.write_bytes(data)
        ranges = list(chunk_ranges(path, chunk_bytes))
        starts, ends = [start for start, _ in ranges], [end for _, end in ranges]
        assert starts == [0, *ends[:-1]][: len(starts)] and all(start < end for start, end in ranges)
        assert (ends[-1] if ends else 0) == len(data)
        assert all(data[end - 1 : end] == b"\n" or end == len(data) for _, end in ranges)
        chunks = [read_chunk(str(path), start, end) for start, end in ranges]
        lines = [line for chunk in chunks for line in chunk.lines]
        has_bom = bool(chunks) and chunks[0].has_bom
        body = data[3:] if has_bom else data
        expected = body.split(b"\n")
        if expected and expected[-1] == b"":
            expected.pop()  # the newline that ends the file does not start a line
        assert lines == expected
        assert has_bom == data.startswith(b"\xef\xbb\xbf")
