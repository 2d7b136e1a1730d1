"""Exact frame sampling from video clips, for the UCF-101 converter and the bench.

The frames written for a clip are exactly those a full sequential decode gives at the cookbook's
indices ``np.arange(0, n, n / k).astype(int)``, where ``n`` is the number of frames that really
decode. Definitions used throughout:

- **Full sequential decode**: PyAV demuxes every packet of the first video stream in file order,
  decodes each, and drains the decoder at the end; a packet the decoder rejects gives no frame.
  Frame ``i`` is the ``i``-th frame it outputs, converted to RGB by ``VideoFrame.to_image()``.
- **n** (:func:`count_decodable_frames`): the number of demuxed packets of size > 0, less those
  an MP4 edit list marks for discarding (their frames are decoded and dropped). On XviD
  with packed B-frames the container header overcounts (a 7 s clip claims 175 frames, 173
  decode); the packet rule matches a full decode on every fixture codec, truncated clips
  included. When the demuxer flags a packet corrupt (a truncated file) or the first packet
  does not decode, the rule cannot be trusted and ``n`` comes from a full decode instead
  (``full_decode=True`` forces that). Damage only the decoder sees (a packet it rejects, fewer
  frames than packets) raises :class:`InconsistentClipError` while reading; :func:`sample_clip`
  then samples again from a full decode. Such damage after the last sampled frame goes unseen,
  and the indices then come from the packet count.

Reading (:func:`read_frames`) decodes forward from the first frame for MPEG-4 Part 2 (UCF-101's
XviD: packed B-frames break the packet/frame mapping, and a clip usually has a single keyframe),
and for H.264 / VP9 seeks to the keyframe at or before each wanted frame, identifying frames by
presentation timestamp. Every seek is checked (it must land on a keyframe no later than the one
planned, frames must arrive in timestamp order); any surprise falls back to the forward decode,
which is the definition itself. Each decoder runs one thread (slice threading, never frame
threading): the parallelism is one clip per process.

Frames are read with PyAV only. decord and OpenCV were measured and are not offered: both fail the
same exactness test on ``fixtures/ucf101``. decord 0.6 returns other frames than asked for 4 to 7
of 8 indices on every MPEG-4 Part 2 clip with B-frames (packed or not) and cannot open the
truncated MP4. OpenCV's frame count is the header's (25 for a packed XviD clip of 23 frames, 75 for
a truncated clip of 36), its own sequential read of the truncated MP4 stops at 34 frames, and asked
for a frame past that it returns the same stale frame for every index.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from phi3v_data.errors import Phi3vDataError, UsageError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

DEFAULT_NUM_FRAMES = 8
JPEG_QUALITY = 95
# One decoding thread: callers parallelise over clips with processes, which scales better than
# threads inside one decoder and avoids frame threading altogether.
DECODER_THREADS = 1
# Codecs for which keyframe seeking is proven exact by a fixture (tests/video). Any other codec
# is read forward, which is always exact, only slower.
SEEKABLE_CODECS = frozenset({"h264", "vp9"})


class VideoDecodeError(Phi3vDataError, ValueError):
    """A clip cannot be opened or decoded; the message names the file and what to do."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)  # both in args: the error pickles across processes
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class InconsistentClipError(VideoDecodeError):
    """The decoder disagrees with the demuxer (damage mid-stream): read with ``full_decode``."""


@dataclass(frozen=True)
class SampledClip:
    """The frames sampled from one clip, in ``indices`` order (an index may repeat)."""

    num_decodable: int
    indices: tuple[int, ...]
    frames: tuple[Image.Image, ...]


def cookbook_indices(n: int, k: int) -> list[int]:
    """The cookbook's ``np.arange(0, n, n / k).astype(int)``, cut to ``k`` entries.

    For ``n >= k`` the indices are distinct. For ``0 < n < k`` the formula repeats frames
    (``n=3, k=8`` gives ``[0, 0, 0, 1, 1, 1, 2, 2]``): short clips are padded with repeats, so
    every record has ``k`` images. For some ``k`` that are not powers of two, float rounding makes
    the formula return ``k + 1`` entries (``n=17, k=7``); the extra last one is dropped.
    """
    if n < 1 or k < 1:
        raise UsageError(f"cannot sample {k} frame(s) from a clip of {n} frame(s)")
    return np.arange(0, n, n / k).astype(int)[:k].tolist()


def count_decodable_frames(path: str | Path, *, full_decode: bool = False) -> int:
    """How many frames a full sequential decode of ``path`` gives (see the module docstring).

    Counts packets unless the clip looks damaged or ``full_decode`` asks to decode every frame.
    """
    return _count(path, None if full_decode else _scan(path))


def read_frames(
    path: str | Path, indices: Sequence[int], *, full_decode: bool = False
) -> list[Image.Image]:
    """The RGB frames a full sequential decode gives at ``indices`` (any order, repeats allowed).

    ``full_decode`` reads forward from the first frame and skips packets the decoder rejects,
    exactly like the definition; without it a damaged clip raises :class:`InconsistentClipError`.
    """
    if any(not isinstance(i, (int, np.integer)) or i < 0 for i in indices):
        raise UsageError(f"frame indices must be non-negative integers, got {list(indices)}")
    if len(indices) == 0:
        return []
    return _read(path, indices, None if full_decode else _scan(path))


def sample_clip(
    path: str | Path, num_frames: int = DEFAULT_NUM_FRAMES, max_side: int | None = None
) -> SampledClip:
    """Count the decodable frames, pick the cookbook indices, read them, and downscale.

    Raises :class:`VideoDecodeError` for a clip that cannot be opened or has no decodable frame.
    ``max_side`` shrinks frames (never enlarges) so the longer side is at most that many pixels.
    """
    if num_frames < 1:
        raise UsageError(f"num_frames must be at least 1, got {num_frames}")
    if max_side is not None and max_side < 1:
        raise UsageError(f"max_side must be a positive number of pixels, got {max_side}")
    try:
        clip = _sample(path, num_frames, _scan(path))
    except InconsistentClipError:  # the packet count was wrong: count and read by decoding
        clip = _sample(path, num_frames, None)
    if max_side is None:
        return clip
    frames = tuple(_fit_within(frame, max_side) for frame in clip.frames)
    return SampledClip(clip.num_decodable, clip.indices, frames)


def _sample(path: str | Path, num_frames: int, scan: _ClipScan | None) -> SampledClip:
    """Count and read using ``scan``, the clip demuxed once; None counts and reads by decoding."""
    n = _count(path, scan)
    if n == 0:
        raise VideoDecodeError(path, "no frame decodes; the file is corrupt, drop or re-encode it")
    indices = cookbook_indices(n, num_frames)
    frames = _read(path, indices, scan)
    return SampledClip(num_decodable=n, indices=tuple(indices), frames=tuple(frames))


def _count(path: str | Path, scan: _ClipScan | None) -> int:
    """The packet count of an undamaged ``scan``; otherwise (or with no scan) a full decode's."""
    if scan is not None and not scan.damaged:
        return scan.num_frames
    with _opened(path) as (container, stream):
        return sum(1 for _ in _decoded_frames(container, stream, path, tolerate_errors=True))


def _read(path: str | Path, indices: Sequence[int], scan: _ClipScan | None) -> list[Image.Image]:
    """Frames at valid, non-empty ``indices``: by the packets of an undamaged ``scan`` (seeking
    where it is exact), else forward skipping packets the decoder rejects."""
    wanted = sorted({int(i) for i in indices})
    trusted = scan is not None and not scan.damaged  # frames should match the packets
    if trusted and wanted[-1] >= scan.num_frames:
        raise VideoDecodeError(path, _out_of_range(scan.num_frames, wanted[-1]))
    images = _read_by_seeking(path, scan, wanted) if trusted and scan.can_seek else None
    if images is None:
        images = _read_forward(path, wanted, tolerate_errors=not trusted)
    return [images[int(i)] for i in indices]


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """Deterministic JPEG bytes: fixed quality, 4:2:0 like the source video, no metadata."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    return buffer.getvalue()


@dataclass(frozen=True)  # no slots: cached_property stores in the instance __dict__
class _ClipScan:
    """What demuxing alone tells about a clip (about a millisecond for a UCF-101 clip)."""

    codec: str
    packet_pts: tuple[int | None, ...]  # packets of size > 0, in decode order
    # Those not flagged discard: an MP4 edit list that starts mid-GOP marks the packets before
    # its start, and the decoder decodes them (as references) but drops their frames.
    shown_pts: tuple[int | None, ...]
    keyframe_pts: tuple[int, ...]  # ascending
    first_is_keyframe: bool
    damaged: bool

    @property
    def num_frames(self) -> int:
        return len(self.shown_pts)

    @cached_property
    def presentation_pts(self) -> list[int] | None:
        """Frame ``i``'s timestamp is the ``i``-th smallest; None when timestamps are unusable."""
        if None in self.packet_pts or len(set(self.packet_pts)) != len(self.packet_pts):
            return None
        return sorted(pts for pts in self.shown_pts if pts is not None)

    @cached_property
    def decode_position(self) -> dict[int | None, int]:
        """Each packet's place in decode order, by timestamp (read after a seek)."""
        return {pts: position for position, pts in enumerate(self.packet_pts)}

    @property
    def can_seek(self) -> bool:
        """Whether keyframe seeking is exact; asked only of an undamaged scan."""
        return (
            self.codec in SEEKABLE_CODECS
            and len(self.keyframe_pts) > 1
            and self.first_is_keyframe
            and self.presentation_pts is not None
            # No frame shown before the first keyframe (open-GOP leading pictures): a decoder
            # may drop those, and frame i would no longer be the i-th smallest timestamp.
            and self.packet_pts[0] == min(self.packet_pts)
        )


@contextmanager
def _opened(path: str | Path) -> Iterator[tuple[InputContainer, VideoStream]]:
    import av

    try:
        container = av.open(str(path))
    except av.error.FileNotFoundError:
        raise VideoDecodeError(path, "file not found") from None
    except av.error.FFmpegError as error:
        raise VideoDecodeError(
            path,
            f"cannot be opened as a video ({error.strerror}); the file is corrupt, cut before "
            "its index, or not a video: drop or re-encode it",
        ) from None
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.thread_count = DECODER_THREADS
        yield container, stream
    finally:
        container.close()


def _decode(stream: VideoStream, packet: Any, path: str | Path, tolerate_errors: bool) -> list:
    """Decode one packet; a rejected packet gives no frame, and is an error on a clean clip."""
    import av

    try:
        return stream.decode(packet)
    except av.error.FFmpegError as error:
        if tolerate_errors:
            return []
        raise InconsistentClipError(
            path,
            f"the decoder rejected a packet the demuxer found intact ({error.strerror}): the "
            "clip is damaged mid-stream; read it with full_decode=True, or drop or re-encode it",
        ) from None


def _decoded_frames(
    container: InputContainer, stream: VideoStream, path: str | Path, tolerate_errors: bool
) -> Iterator[VideoFrame]:
    for packet in container.demux(stream):  # ends with an empty packet that drains the decoder
        yield from _decode(stream, packet, path, tolerate_errors)


def _scan(path: str | Path) -> _ClipScan:
    packet_pts: list[int | None] = []
    shown_pts: list[int | None] = []
    keyframe_pts: list[int] = []
    first_is_keyframe = damaged = False
    with _opened(path) as (container, stream):
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if not packet_pts:  # a first packet that does not decode means a corrupt payload
                damaged = not _decodes(stream, packet)
                first_is_keyframe = packet.is_keyframe
            damaged = damaged or packet.is_corrupt
            packet_pts.append(packet.pts)
            if not packet.is_discard:
                shown_pts.append(packet.pts)
            if packet.is_keyframe and packet.pts is not None:
                keyframe_pts.append(packet.pts)
        codec = stream.codec_context.name
    return _ClipScan(
        codec=codec,
        packet_pts=tuple(packet_pts),
        shown_pts=tuple(shown_pts),
        keyframe_pts=tuple(sorted(keyframe_pts)),
        first_is_keyframe=first_is_keyframe,
        damaged=damaged,
    )


def _decodes(stream: VideoStream, packet: Any) -> bool:
    import av

    try:
        stream.decode(packet)
    except av.error.FFmpegError:
        return False
    return True


def _read_forward(
    path: str | Path, wanted: list[int], tolerate_errors: bool
) -> dict[int, Image.Image]:
    images: dict[int, Image.Image] = {}
    wanted_set = set(wanted)
    decoded = 0
    with _opened(path) as (container, stream):
        for position, frame in enumerate(_decoded_frames(container, stream, path, tolerate_errors)):
            decoded = position + 1
            if position in wanted_set:
                images[position] = frame.to_image()
                if position == wanted[-1]:
                    return images
    if tolerate_errors:  # the count came from this same decode: the index is simply too large
        raise VideoDecodeError(path, _out_of_range(decoded, wanted[-1]))
    raise InconsistentClipError(
        path, f"has more packets than frames that decode ({decoded}): read it with full_decode=True"
    )


def _out_of_range(num_frames: int, index: int) -> str:
    return f"only {num_frames} frame(s) decode, frame index {index} was asked for"


class _InexactSeek(Exception):
    """A seek did not land where the scan said; the caller reads forward instead."""


def _read_by_seeking(
    path: str | Path, scan: _ClipScan, wanted: list[int]
) -> dict[int, Image.Image] | None:
    """Seek to the keyframe before each wanted frame unless already decoding towards it.

    Returns None when any check fails: the forward decode then gives the frames.
    """
    presentation = scan.presentation_pts
    assert presentation is not None, "callers check scan.can_seek"
    wanted_pts = frozenset(presentation[index] for index in wanted)
    images: dict[int, Image.Image] = {}
    frames: Iterator[VideoFrame] | None = None
    last_pts = None
    with _opened(path) as (container, stream):
        try:
            for index in wanted:
                target = presentation[index]
                # can_seek guarantees a keyframe at or before every frame: the first packet.
                keyframe = scan.keyframe_pts[bisect_right(scan.keyframe_pts, target) - 1]
                if frames is None or keyframe > last_pts:
                    frames = _frames_after_seek(
                        container, stream, scan, keyframe, wanted_pts, path
                    )
                for frame in frames:
                    if frame.pts is None or frame.pts > target:
                        raise _InexactSeek
                    last_pts = frame.pts
                    if frame.pts == target:
                        images[index] = frame.to_image()
                        break
                else:
                    raise _InexactSeek
        except _InexactSeek:
            return None
    return images


def _frames_after_seek(
    container: InputContainer,
    stream: VideoStream,
    scan: _ClipScan,
    keyframe: int,
    wanted_pts: frozenset[int],
    path: str | Path,
) -> Iterator[VideoFrame]:
    """Frames decoded from the keyframe at ``keyframe``, after checking where the seek landed.

    Landing on an earlier keyframe is exact (only slower); landing on a later packet or a
    non-keyframe is not, and raises :class:`_InexactSeek`. Frames that no other frame refers to
    are decoded only when wanted: skipping them changes no other frame's pixels and saves about
    40% of the decoding on B-frame streams.
    """
    container.seek(keyframe, stream=stream)  # backward to a keyframe; flushes the decoder
    decode_position = scan.decode_position
    landed = False
    for packet in container.demux(stream):
        if packet.size and not landed:
            position = decode_position.get(packet.pts)
            if not packet.is_keyframe or position is None or position > decode_position[keyframe]:
                raise _InexactSeek
            landed = True
        wanted = not packet.size or packet.pts in wanted_pts  # the empty packet drains
        stream.codec_context.skip_frame = "DEFAULT" if wanted else "NONREF"
        yield from _decode(stream, packet, path, tolerate_errors=False)


def _fit_within(image: Image.Image, max_side: int) -> Image.Image:
    longest = max(image.size)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)
