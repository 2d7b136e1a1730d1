"""Sampled frames are exactly those of a full sequential decode, on every fixture."""

from __future__ import annotations

import av
import numpy as np
import pytest

from phi3v_data.converters import video
from phi3v_data.converters.video import count_decodable_frames, read_frames, sample_clip

from video_fixtures import FIXTURES, GOLDEN, full_sequential_decode

CLIPS = sorted(GOLDEN)
# Truncated clips are read forward: their last packet is cut, so timestamps are not trusted.
SEEKABLE_CLIPS = [
    clip
    for clip in CLIPS
    if GOLDEN[clip]["codec"] in video.SEEKABLE_CODECS and not clip.startswith("broken/")
]


def test_fixtures_cover_every_codec_the_issue_names() -> None:
    codecs = {GOLDEN[clip]["codec"] for clip in CLIPS}
    assert {"mpeg4", "h264", "vp9"} <= codecs
    # Packed B-frame XviD: the container header claims more frames than decode.
    assert any(g["header_frames"] > g["decodable_frames"] for g in GOLDEN.values())
    assert len(SEEKABLE_CLIPS) >= 3


@pytest.mark.parametrize("clip", CLIPS)
def test_neighbouring_fixture_frames_differ(clip) -> None:
    """Otherwise a reader returning the neighbouring frame could pass the tests below."""
    frames = full_sequential_decode(FIXTURES / clip)
    if clip.startswith("broken/truncated_"):
        # The cut last packet decodes mostly by concealment: a near copy of the frame before.
        frames = frames[:-1]
    for before, after in zip(frames, frames[1:]):
        assert np.abs(before.astype(int) - after.astype(int)).mean() > 1.0


@pytest.mark.parametrize("clip", CLIPS)
def test_count_equals_full_decode_and_golden(clip) -> None:
    path = FIXTURES / clip
    with av.open(str(path)) as container:
        header_frames = container.streams.video[0].frames
    assert header_frames == GOLDEN[clip]["header_frames"]
    assert count_decodable_frames(path) == len(full_sequential_decode(path))
    assert count_decodable_frames(path) == GOLDEN[clip]["decodable_frames"]
    assert count_decodable_frames(path, full_decode=True) == GOLDEN[clip]["decodable_frames"]


@pytest.mark.parametrize("clip", CLIPS)
def test_sampled_frames_equal_full_decode(clip) -> None:
    path = FIXTURES / clip
    sampled = sample_clip(path)
    reference = full_sequential_decode(path)
    assert sampled.num_decodable == len(reference)
    assert list(sampled.indices) == GOLDEN[clip]["indices"]
    for index, frame in zip(sampled.indices, sampled.frames):
        assert frame.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(frame), reference[index], err_msg=f"frame {index}")


@pytest.mark.parametrize("clip", CLIPS)
def test_every_frame_in_any_order_equals_full_decode(clip) -> None:
    path = FIXTURES / clip
    reference = full_sequential_decode(path)
    # Backwards in steps of 3, then every frame, with repeats: the reader must sort, seek
    # between groups of pictures and continue inside one.
    indices = list(range(len(reference)))[::-3] + list(range(len(reference)))
    for index, frame in zip(indices, read_frames(path, indices)):
        np.testing.assert_array_equal(np.asarray(frame), reference[index], err_msg=f"frame {index}")


@pytest.mark.parametrize("clip", SEEKABLE_CLIPS)
def test_keyframe_seeking_itself_is_exact(clip) -> None:
    """The seek path must not silently fall back to the forward decode on the fixtures."""
    path = FIXTURES / clip
    scan = video._scan(path)
    assert scan.can_seek
    reference = full_sequential_decode(path)
    wanted = GOLDEN[clip]["indices"]
    images = video._read_by_seeking(path, scan, wanted)
    assert images is not None
    for index in wanted:
        np.testing.assert_array_equal(np.asarray(images[index]), reference[index])


def test_mpeg4_part2_is_read_forward() -> None:
    """Packed B-frames break the packet-to-frame mapping that seeking relies on."""
    scan = video._scan(FIXTURES / "subset/train/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
    assert scan.codec == "mpeg4"
    assert not scan.can_seek
