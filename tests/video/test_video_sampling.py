"""Index choice, short / truncated / corrupt clips, resizing, JPEG determinism, process pools."""

from __future__ import annotations

import io
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from phi3v_data.converters.video import (
    InconsistentClipError,
    VideoDecodeError,
    cookbook_indices,
    count_decodable_frames,
    encode_jpeg,
    read_frames,
    sample_clip,
)
from phi3v_data.errors import Phi3vDataError, UsageError
from video_fixtures import BROKEN, FIXTURES, full_sequential_decode, write_damaged_mid_stream_clip

PACKED_XVID = FIXTURES / "official/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
H264 = FIXTURES / "subset/val/Basketball/v_Basketball_g06_c02.mp4"


def encode_clip(path: Path, num_frames: int) -> Path:
    """A tiny MPEG-4 Part 2 AVI whose frame ``i`` is a flat grey of level ``30 * i``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for level in range(num_frames):
            image = np.full((48, 64, 3), 30 * level, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


# --- indices ---------------------------------------------------------------------------------


def test_cookbook_indices_are_the_cookbook_formula_for_the_default_k() -> None:
    for n in range(1, 3000):
        assert cookbook_indices(n, 8) == np.arange(0, n, n / 8).astype(int).tolist()


def test_short_clips_are_padded_by_repeating_frames() -> None:
    assert cookbook_indices(3, 8) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert cookbook_indices(1, 8) == [0] * 8


def test_float_rounding_extra_index_is_dropped() -> None:
    assert len(np.arange(0, 17, 17 / 7)) == 8  # the cookbook formula's own overshoot
    assert cookbook_indices(17, 7) == np.arange(0, 17, 17 / 7).astype(int)[:7].tolist()


@pytest.mark.parametrize(("n", "k"), [(0, 8), (10, 0), (-1, 8)])
def test_indices_need_a_frame_and_a_positive_k(n, k) -> None:
    with pytest.raises(UsageError):
        cookbook_indices(n, k)


# --- short, truncated, damaged and corrupt clips -------------------------------------------------


def test_clip_shorter_than_num_frames_gives_num_frames_images(tmp_path) -> None:
    clip = encode_clip(tmp_path / "three.avi", num_frames=3)
    sampled = sample_clip(clip, num_frames=8)
    assert sampled.num_decodable == 3
    assert sampled.indices == (0, 0, 0, 1, 1, 1, 2, 2)
    reference = full_sequential_decode(clip)
    for index, frame in zip(sampled.indices, sampled.frames):
        np.testing.assert_array_equal(np.asarray(frame), reference[index])


def test_header_overcounts_packed_xvid_but_sampling_uses_decodable_frames() -> None:
    with av.open(str(PACKED_XVID)) as container:
        assert container.streams.video[0].frames == 25
    assert count_decodable_frames(PACKED_XVID) == 23
    assert sample_clip(PACKED_XVID).indices[-1] == 20  # 25 would have given 21


def test_frames_an_edit_list_discards_are_not_counted() -> None:
    clip = FIXTURES / "codecs/v_Basketball_g12_c01.mp4"
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        discarded = sum(1 for packet in container.demux(stream) if packet.size and packet.is_discard)
    assert discarded == 3
    assert count_decodable_frames(clip) == len(full_sequential_decode(clip)) == 60


@pytest.mark.parametrize("name", ["truncated_xvid_packed.avi", "truncated_h264.mp4"])
def test_truncated_clip_gives_its_decodable_frames(name) -> None:
    clip = BROKEN / name
    reference = full_sequential_decode(clip)
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames > 1.5 * len(reference)  # header: the whole clip
    sampled = sample_clip(clip)
    assert sampled.num_decodable == len(reference)
    assert sampled.indices[-1] < len(reference)
    for index, frame in zip(sampled.indices, sampled.frames):
        np.testing.assert_array_equal(np.asarray(frame), reference[index])
    with pytest.raises(VideoDecodeError, match=f"only {len(reference)} frame"):
        read_frames(clip, [len(reference)])


def test_damage_only_the_decoder_sees_is_resampled_from_a_full_decode(tmp_path) -> None:
    clip = write_damaged_mid_stream_clip(tmp_path)
    reference = full_sequential_decode(clip)
    assert count_decodable_frames(clip) > len(reference)  # the packet count cannot know
    assert count_decodable_frames(clip, full_decode=True) == len(reference)
    with pytest.raises(InconsistentClipError, match="full_decode=True"):
        read_frames(clip, [30])
    sampled = sample_clip(clip)
    assert sampled.num_decodable == len(reference)
    assert list(sampled.indices) == cookbook_indices(len(reference), 8)
    for index, frame in zip(sampled.indices, sampled.frames):
        np.testing.assert_array_equal(np.asarray(frame), reference[index])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("corrupt_payload.avi", "no frame decodes"),
        ("not_a_video.avi", "cannot be opened as a video"),
        ("truncated_no_index.mp4", "cannot be opened as a video"),
        ("missing.avi", "file not found"),
    ],
)
def test_unusable_clip_raises_the_project_error_naming_the_file(name, message) -> None:
    with pytest.raises(VideoDecodeError, match=message) as raised:
        sample_clip(BROKEN / name)
    assert isinstance(raised.value, Phi3vDataError)
    assert str(raised.value).startswith(str(BROKEN / name))


def test_decode_errors_survive_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        with pytest.raises(VideoDecodeError, match="no frame decodes") as raised:
            pool.submit(sample_clip, BROKEN / "corrupt_payload.avi").result()
    assert raised.value.path == str(BROKEN / "corrupt_payload.avi")


def test_corrupt_payload_counts_zero_decodable_frames() -> None:
    assert count_decodable_frames(BROKEN / "corrupt_payload.avi") == 0


def test_index_past_the_end_of_a_clean_clip_is_refused() -> None:
    n = count_decodable_frames(H264)
    with pytest.raises(VideoDecodeError, match=f"only {n} frame"):
        read_frames(H264, [0, n])


@pytest.mark.parametrize("indices", [[-1], [1.5]])
def test_bad_indices_are_a_usage_error(indices) -> None:
    with pytest.raises(UsageError):
        read_frames(H264, indices)


# --- output images ---------------------------------------------------------------------------


def test_max_side_shrinks_keeping_aspect_and_never_enlarges() -> None:
    assert {f.size for f in sample_clip(H264, max_side=32).frames} == {(32, 24)}
    assert {f.size for f in sample_clip(H264, max_side=500).frames} == {(64, 48)}


@pytest.mark.parametrize("options", [{"max_side": 0}, {"num_frames": 0}])
def test_bad_options_are_a_usage_error_before_any_decoding(options) -> None:
    with pytest.raises(UsageError):
        sample_clip(BROKEN / "not_a_video.avi", **options)


def test_jpeg_bytes_are_deterministic_and_close_to_the_frame() -> None:
    first = [encode_jpeg(frame) for frame in sample_clip(PACKED_XVID).frames]
    second = [encode_jpeg(frame) for frame in sample_clip(PACKED_XVID).frames]
    assert first == second
    # Luma only: 4:2:0 chroma (as in the source video) blurs the test pattern's colour edges.
    decoded = np.asarray(Image.open(io.BytesIO(first[3])).convert("L"), dtype=int)
    original = np.asarray(sample_clip(PACKED_XVID).frames[3].convert("L"), dtype=int)
    assert np.abs(decoded - original).mean() < 2


def test_sampling_in_a_process_pool_gives_the_same_bytes() -> None:
    clips = [PACKED_XVID, H264]
    local = [[encode_jpeg(f) for f in sample_clip(clip).frames] for clip in clips]
    with ProcessPoolExecutor(max_workers=2) as pool:
        pooled = list(pool.map(_sample_as_jpeg, clips))
    assert pooled == local
    assert pickle.loads(pickle.dumps(sample_clip(H264))).indices == sample_clip(H264).indices


def _sample_as_jpeg(clip: Path) -> list[bytes]:
    return [encode_jpeg(frame) for frame in sample_clip(clip).frames]
