"""Fixture paths, golden counts, and the reference the sampler is held to.

The reference is a plain full sequential decode with PyAV, written independently of
``phi3v_data.converters.video`` on purpose: demux every packet of the first video stream, decode
each (a packet the decoder rejects gives no frame), drain the decoder with the final empty
packet, and convert each frame with ``to_ndarray(format="rgb24")``.
"""

from __future__ import annotations

import json
import random
from functools import cache
from pathlib import Path

import av
import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ucf101"
GOLDEN: dict[str, dict] = json.loads((FIXTURES / "golden" / "sampling.json").read_text())
BROKEN = FIXTURES / "broken"


@cache
def full_sequential_decode(path: Path) -> tuple[np.ndarray, ...]:
    """Every frame of a clip, in output order, as H x W x 3 uint8 arrays (cached per path)."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                decoded = stream.decode(packet)
            except av.error.FFmpegError:
                continue
            frames.extend(frame.to_ndarray(format="rgb24") for frame in decoded)
    return tuple(frames)


def write_damaged_mid_stream_clip(folder: Path) -> Path:
    """A copy of a clean XviD clip whose 20th video chunk is noise (sizes kept).

    The demuxer still sees an intact file; only the decoder notices, and rejects that packet.
    """
    source = FIXTURES / "official/UCF-101/Basketball/v_Basketball_g08_c01.avi"
    clip = folder / "damaged.avi"
    clip.write_bytes(_scramble_avi_chunk(source.read_bytes(), chunk_number=19))
    return clip


def _scramble_avi_chunk(avi: bytes, chunk_number: int) -> bytes:
    data = bytearray(avi)
    position = data.index(b"movi") + 4
    index_start = data.index(b"idx1")  # the chunks end where the index starts
    seen = 0
    while position < index_start:
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if data[position + 2 : position + 4] == b"dc" and size:
            if seen == chunk_number:
                data[position + 8 : position + 8 + size] = random.Random(0).randbytes(size)
                return bytes(data)
            seen += 1
        position += 8 + size + (size & 1)
    raise ValueError(f"the clip has only {seen} video chunks")
