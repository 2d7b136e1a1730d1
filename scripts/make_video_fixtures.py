"""Generate the tiny UCF-101 fixture trees under ``fixtures/ucf101/``.

Run once by a developer; the output is committed and tests never regenerate it:

    /work/venv/bin/python scripts/make_video_fixtures.py

Needs the ``ffmpeg`` command-line tool built with libxvid, libx264 and libvpx (Debian's
``apt-get install ffmpeg`` has all three): XviD with packed B-frames, the case that makes
container headers overcount, can only be written by libxvid, which PyAV's bundled FFmpeg
lacks. PyAV is used afterwards to record the golden frame counts with a full decode.

What it writes (every clip 64x48, 1-3 s, content ``testsrc2`` with a per-clip hue so
neighbouring frames and neighbouring clips all differ):

- ``official/UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and ``official/ucfTrainTestlist/``
  (CRLF line endings, as shipped), including the real quirk of folder ``HandstandPushups/``
  holding files named ``v_HandStandPushups_*``;
- ``subset/{train,val,test}/<Class>/`` (the layout of the cookbook's UCF-101 subset), with
  AVI and H.264 MP4 clips;
- ``codecs/``: a VP9 WebM clip, and an H.264 MP4 cut with ``-ss`` and stream copy, whose edit
  list starts mid-GOP (the demuxer flags the packets before the cut as discarded);
- ``broken/``: truncated and corrupt clips for rejection tests;
- ``golden/sampling.json``: per clip, the header frame count, the number of frames a full
  sequential decode gives, and the default 8 cookbook indices.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "ucf101"
SIZE = "64x48"
DEFAULT_NUM_FRAMES = 8

# Output options per encoding. Single-threaded encoders and bitexact flags keep the bytes
# reproducible on one toolchain (other FFmpeg versions may still write different bytes).
ENCODINGS: dict[str, list[str]] = {
    # XviD with packed B-frames: the container claims more frames than decode.
    "xvid_packed": ["-c:v", "libxvid", "-bf", "2", "-q:v", "4", "-threads", "1"],
    "xvid": ["-c:v", "libxvid", "-bf", "0", "-q:v", "4", "-threads", "1"],
    # FFmpeg's own MPEG-4 Part 2 encoder: B-frames, not packed, short GOP.
    "mpeg4_bframes": ["-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-g", "12", "-q:v", "4"],
    # Short GOP so that keyframe seeking has several keyframes to choose from.
    "h264_bframes": [
        "-c:v", "libx264", "-preset", "medium", "-bf", "3", "-g", "12", "-keyint_min", "12",
        "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-threads", "1", "-movflags", "+faststart",
    ],
    "vp9": [
        "-c:v", "libvpx-vp9", "-b:v", "150k", "-g", "12", "-deadline", "good",
        "-cpu-used", "4", "-threads", "1", "-pix_fmt", "yuv420p",
    ],
}


# testsrc2 barely moves at 64x48 (neighbouring frames can be identical), which would let a
# reader that returns the neighbouring frame pass an exactness test. So a stripe of eight
# 8x8 squares along the bottom spells the source frame number in binary: any two frames
# differ by at least one full square.
FRAME_NUMBER_STRIPE = ",".join(
    f"drawbox=x={8 * bit}:y=40:w=8:h=8:color=white:t=fill:enable='mod(floor(n/{2**bit}),2)'"
    for bit in range(8)
)


@dataclass(frozen=True)
class ClipSpec:
    path: str  # relative to ROOT
    encoding: str
    seconds: float
    fps: str = "25"


def official_clips() -> list[ClipSpec]:
    """Groups 1, 8, 15 and 22: each of the three official splits tests one of them."""
    classes = {
        "ApplyEyeMakeup": "ApplyEyeMakeup",
        "Basketball": "Basketball",
        # Real UCF-101 quirk: the folder and classInd say "Handstand", the files "HandStand".
        "HandstandPushups": "HandStandPushups",
    }
    encodings = ["xvid_packed", "xvid", "mpeg4_bframes", "xvid_packed"]
    clips = []
    for class_number, (folder, file_class) in enumerate(classes.items()):
        for slot, group in enumerate((1, 8, 15, 22)):
            clips.append(
                ClipSpec(
                    path=f"official/UCF-101/{folder}/v_{file_class}_g{group:02d}_c01.avi",
                    encoding=encodings[(slot + class_number) % len(encodings)],
                    seconds=1.0 + 0.5 * ((slot + class_number) % 4),
                    fps="30000/1001" if (slot, class_number) == (1, 2) else "25",
                )
            )
    return clips


def subset_clips() -> list[ClipSpec]:
    return [
        ClipSpec("subset/train/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "xvid_packed", 2.0),
        ClipSpec("subset/train/ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.mp4", "h264_bframes", 2.0),
        ClipSpec("subset/train/Basketball/v_Basketball_g08_c01.avi", "xvid", 1.5),
        ClipSpec("subset/train/Basketball/v_Basketball_g10_c03.avi", "mpeg4_bframes", 2.5),
        ClipSpec("subset/val/ApplyEyeMakeup/v_ApplyEyeMakeup_g05_c01.avi", "xvid_packed", 1.0),
        ClipSpec("subset/val/Basketball/v_Basketball_g06_c02.mp4", "h264_bframes", 3.0),
        ClipSpec("subset/test/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "xvid_packed", 3.0),
        ClipSpec("subset/test/Basketball/v_Basketball_g02_c04.avi", "xvid", 2.0),
    ]


def other_clips() -> list[ClipSpec]:
    return [
        ClipSpec("codecs/v_Basketball_g11_c01.webm", "vp9", 2.0),
        ClipSpec("codecs/full_h264_for_edit_list.mp4", "h264_bframes", 3.0),
        # Sources of the truncated clips in broken/ (removed after cutting).
        ClipSpec("broken/full_xvid_packed.avi", "xvid_packed", 3.0),
        ClipSpec("broken/full_h264_faststart.mp4", "h264_bframes", 3.0),
        ClipSpec("broken/full_h264_index_at_end.mp4", "h264_bframes", 2.0),
    ]


def encode(spec: ClipSpec, hue_degrees: int) -> Path:
    out = ROOT / spec.path
    out.parent.mkdir(parents=True, exist_ok=True)
    options = list(ENCODINGS[spec.encoding])
    if spec.path.endswith("index_at_end.mp4"):
        options.remove("+faststart")
        options.remove("-movflags")
    source = (
        f"testsrc2=size={SIZE}:rate={spec.fps}:duration={spec.seconds},hue=h={hue_degrees},"
        + FRAME_NUMBER_STRIPE
    )
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
        *options, "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", str(out),
    ]
    subprocess.run(command, check=True)
    return out


def make_edit_list_clip() -> None:
    """Stream-copy from 0.6 s: the cut falls 3 frames after a keyframe (GOP 12 at 25 fps)."""
    source = ROOT / "codecs" / "full_h264_for_edit_list.mp4"
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", "0.6", "-i", str(source),
        "-c", "copy", "-map_metadata", "-1", "-fflags", "+bitexact",
        str(ROOT / "codecs" / "v_Basketball_g12_c01.mp4"),
    ]
    subprocess.run(command, check=True)
    source.unlink()


def make_broken_clips() -> None:
    """Cut and damage copies of clean clips; keep only the damaged ones."""
    broken = ROOT / "broken"
    # AVI cut mid-stream: the index is lost, the demuxer scans; the last packet is partial.
    xvid = (broken / "full_xvid_packed.avi").read_bytes()
    (broken / "truncated_xvid_packed.avi").write_bytes(xvid[: len(xvid) * 6 // 10])
    # MP4 with the index first, cut mid-stream: the index promises packets past the end.
    mp4 = (broken / "full_h264_faststart.mp4").read_bytes()
    (broken / "truncated_h264.mp4").write_bytes(mp4[: len(mp4) * 6 // 10])
    # MP4 with the index last, cut: no index at all, the file cannot be opened.
    tail_index = (broken / "full_h264_index_at_end.mp4").read_bytes()
    (broken / "truncated_no_index.mp4").write_bytes(tail_index[: len(tail_index) // 2])
    (broken / "corrupt_payload.avi").write_bytes(scramble_avi_payload(xvid))
    (broken / "not_a_video.avi").write_bytes(random.Random(1).randbytes(4096))
    for name in ("full_xvid_packed.avi", "full_h264_faststart.mp4", "full_h264_index_at_end.mp4"):
        (broken / name).unlink()


def scramble_avi_payload(avi: bytes) -> bytes:
    """Keep the AVI headers and chunk structure, replace every video frame with noise."""
    data = bytearray(avi)
    rng = random.Random(0)
    position = data.index(b"movi") + 4
    end = data.index(b"idx1")
    while position < end:
        chunk_id = bytes(data[position : position + 4])
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk_id.endswith(b"dc"):
            data[position + 8 : position + 8 + size] = rng.randbytes(size)
        position += 8 + size + (size & 1)
    return bytes(data)


def write_split_lists() -> None:
    lists = ROOT / "official" / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    class_folders = sorted(p.name for p in (ROOT / "official" / "UCF-101").iterdir())
    class_number = {name: number for number, name in enumerate(class_folders, start=1)}
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        "".join(f"{number} {name}{crlf}" for name, number in class_number.items()).encode()
    )
    videos = sorted((ROOT / "official" / "UCF-101").glob("*/*.avi"))
    for split in (1, 2, 3):
        test_groups = range(7 * split - 6, 7 * split + 1)  # official: 1-7, 8-14, 15-21
        train_lines, test_lines = [], []
        for video in videos:
            relative = f"{video.parent.name}/{video.name}"
            group = int(video.stem.split("_g")[1][:2])
            if group in test_groups:
                test_lines.append(f"{relative}{crlf}")
            else:
                train_lines.append(f"{relative} {class_number[video.parent.name]}{crlf}")
        (lists / f"trainlist0{split}.txt").write_bytes("".join(train_lines).encode())
        (lists / f"testlist0{split}.txt").write_bytes("".join(test_lines).encode())


def full_decode_count(path: Path) -> int:
    """Frames a full sequential PyAV decode gives; packets the decoder rejects give none."""
    import av

    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                count += len(stream.decode(packet))
            except av.error.FFmpegError:
                continue
    return count


def write_golden(specs: list[ClipSpec]) -> None:
    import av

    golden = {}
    clips = [ROOT / spec.path for spec in specs if (ROOT / spec.path).exists()]
    clips += [ROOT / "codecs" / "v_Basketball_g12_c01.mp4"]
    clips += sorted((ROOT / "broken").glob("truncated_*"))
    for clip in clips:
        relative = clip.relative_to(ROOT).as_posix()
        try:
            with av.open(str(clip)) as container:
                header_frames = container.streams.video[0].frames
                codec = container.streams.video[0].codec_context.name
        except av.error.FFmpegError:
            continue  # cannot be opened: its rejection is tested, it has no counts
        decoded = full_decode_count(clip)
        golden[relative] = {
            "codec": codec,
            "header_frames": header_frames,
            "decodable_frames": decoded,
            "indices": np.arange(0, decoded, decoded / DEFAULT_NUM_FRAMES).astype(int).tolist(),
        }
    out = ROOT / "golden" / "sampling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(sorted(golden.items())), indent=2) + "\n")


def main() -> int:
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: apt-get install -y ffmpeg (needs libxvid, libx264, libvpx)")
        return 1
    for folder in ("official", "subset", "codecs", "broken", "golden"):
        shutil.rmtree(ROOT / folder, ignore_errors=True)
    specs = official_clips() + subset_clips() + other_clips()
    for number, spec in enumerate(specs):
        encode(spec, hue_degrees=(number * 37) % 360)
    make_edit_list_clip()
    make_broken_clips()
    write_split_lists()
    write_golden(specs)
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    print(f"wrote {ROOT} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
