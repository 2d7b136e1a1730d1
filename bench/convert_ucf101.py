"""Speed of UCF-101 frame sampling against the cookbook's converter, on the same clips.

    /work/venv/bin/python bench/convert_ucf101.py [--quick] [--workdir DIR] [--workers 2]

Generates its clips with PyAV (into a temporary folder, or ``--workdir`` to keep and reuse them):

- UCF-like: 320x240, 25 fps, 7 s, MPEG-4 Part 2 tagged XVID in AVI, B-frames, one keyframe;
- phone-like: 1920x1080, 30 fps, 30 s, H.264 High with B-frames (b-pyramid) and a keyframe
  every second, as phone cameras write, about 7 Mb/s.

Then converts every clip twice, 8 frames each, written as ``<split>/<Class>/<stem>.<k>.jpg``:

- baseline: what the cookbook's ``convert_ucf101.py`` does: PyAV with its default threads, frame
  count from the container header, decode forward from frame 0 to the last index, Pillow JPEG
  save, one clip after another;
- ours: :func:`sample_clip` + :func:`encode_jpeg` in a pool of ``--workers`` processes.

It prints seconds, clips/s and frames/s for each side and the speed ratio, per clip set and
overall, and checks that both wrote the same frames: same indices, and a mean absolute pixel
difference under 4 per frame between the two JPEGs (they differ by JPEG quality: the cookbook
saves at Pillow's default 75, we at 95). Exit status 1 when frames differ.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import av.filter
import numpy as np
from av.video.frame import PictureType
from PIL import Image

from phi3v_data.converters.video import encode_jpeg, sample_clip

NUM_FRAMES = 8
MAX_MEAN_ABS_DIFF = 4.0
TARGET_RATIO = 3.0


@dataclass(frozen=True)
class ClipSet:
    name: str
    folder: str  # <split>/<Class> under the raw root
    suffix: str
    size: tuple[int, int]
    rate: int
    seconds: int
    codec: str
    options: dict[str, str]
    count: int
    quick_count: int


CLIP_SETS = (
    ClipSet(
        name="UCF-like 320x240 XVID AVI",
        folder="train/UcfLike",
        suffix=".avi",
        size=(320, 240),
        rate=25,
        seconds=7,
        codec="mpeg4",
        options={"b": "500k", "bf": "2", "g": "300"},
        count=200,
        quick_count=50,
    ),
    ClipSet(
        name="phone-like 1080p30 H.264 MP4",
        folder="train/PhoneLike",
        suffix=".mp4",
        size=(1920, 1080),
        rate=30,
        seconds=30,
        codec="libx264",
        options={
            "preset": "veryfast",
            "x264-params": "keyint=30:min-keyint=30:scenecut=0:bframes=3:b-adapt=0",
        },
        count=4,
        quick_count=2,
    ),
)


def generate_clip(clip_set: ClipSet, path: Path, seed: int) -> None:
    """testsrc2 (moving shapes) with temporal noise, so the encoder has real work to do."""
    width, height = clip_set.size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(clip_set.codec, rate=clip_set.rate, options=clip_set.options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if clip_set.codec == "mpeg4":
            stream.codec_context.codec_tag = "XVID"
        graph = av.filter.Graph()
        source = graph.add(
            "testsrc2", f"size={width}x{height}:rate={clip_set.rate}:duration={clip_set.seconds}"
        )
        noise = graph.add("noise", f"alls=6:allf=t:all_seed={seed}")
        to_yuv = graph.add("format", "yuv420p")
        sink = graph.add("buffersink")
        source.link_to(noise)
        noise.link_to(to_yuv)
        to_yuv.link_to(sink)
        graph.configure()
        while True:
            try:
                frame = sink.pull()
            except (av.error.EOFError, av.error.BlockingIOError):
                break
            frame.pict_type = PictureType.NONE  # testsrc2 marks every frame I: let the encoder pick
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def generate_clips(raw: Path, quick: bool) -> dict[str, list[Path]]:
    clips: dict[str, list[Path]] = {}
    for clip_set in CLIP_SETS:
        folder = raw / clip_set.folder
        folder.mkdir(parents=True, exist_ok=True)
        count = clip_set.quick_count if quick else clip_set.count
        clips[clip_set.name] = []
        started, generated = time.perf_counter(), 0
        for number in range(count):
            path = folder / f"v_{folder.name}_g{number + 1:03d}_c01{clip_set.suffix}"
            if not path.exists():
                generate_clip(clip_set, path, seed=number)
                generated += 1
            clips[clip_set.name].append(path)
        elapsed = time.perf_counter() - started
        print(f"  {clip_set.name}: {count} clips ({generated} generated in {elapsed:.0f} s)")
    return clips


def image_prefix(clip: Path, raw: Path, out: Path) -> Path:
    """``<out>/<split>/<Class>/<stem>``; frame k goes to ``<stem>.<k>.jpg``."""
    return out / clip.relative_to(raw).with_suffix("")


def cookbook_convert(clip: Path, raw: Path, out: Path) -> list[int]:
    """The cookbook's ``video_to_images`` + ``read_video_pyav`` + ``image.save``, unchanged."""
    with av.open(str(clip)) as container:
        total_frames = container.streams.video[0].frames
        indices = np.arange(0, total_frames, total_frames / NUM_FRAMES).astype(int)
        frames = []
        container.seek(0)
        for i, frame in enumerate(container.decode(video=0)):
            if i > indices[-1]:
                break
            if i >= indices[0] and i in indices:
                frames.append(frame)
        video_array = np.stack([x.to_ndarray(format="rgb24") for x in frames])
    images = [Image.fromarray(frame).convert("RGB") for frame in video_array]
    prefix = image_prefix(clip, raw, out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        image.save(prefix.with_suffix(f".{k}.jpg"))
    return indices.tolist()


def our_convert(clip: Path, raw: Path, out: Path) -> list[int]:
    sampled = sample_clip(clip, NUM_FRAMES)
    prefix = image_prefix(clip, raw, out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(sampled.frames):
        prefix.with_suffix(f".{k}.jpg").write_bytes(encode_jpeg(frame))
    return list(sampled.indices)


def run_baseline(clips: list[Path], raw: Path, out: Path) -> tuple[float, list[list[int]]]:
    started = time.perf_counter()
    indices = [cookbook_convert(clip, raw, out) for clip in clips]
    return time.perf_counter() - started, indices


def run_ours(
    clips: list[Path], raw: Path, out: Path, workers: int
) -> tuple[float, list[list[int]]]:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        indices = list(pool.map(our_convert, clips, [raw] * len(clips), [out] * len(clips)))
    return time.perf_counter() - started, indices


def worst_frame_difference(clips: list[Path], raw: Path, baseline: Path, ours: Path) -> float:
    worst = 0.0
    for clip in clips:
        for k in range(NUM_FRAMES):
            pair = [
                np.asarray(Image.open(image_prefix(clip, raw, out).with_suffix(f".{k}.jpg")), int)
                for out in (baseline, ours)
            ]
            worst = max(worst, float(np.abs(pair[0] - pair[1]).mean()))
    return worst


@dataclass(frozen=True)
class SetResult:
    name: str
    clips: int
    baseline_s: float
    ours_s: float
    same_indices: bool
    worst_difference: float

    @property
    def same_frames(self) -> bool:
        return self.same_indices and self.worst_difference < MAX_MEAN_ABS_DIFF


def bench_set(name: str, clips: list[Path], raw: Path, scratch: Path, workers: int) -> SetResult:
    baseline_out, ours_out = scratch / "baseline", scratch / "ours"
    baseline_s, baseline_indices = run_baseline(clips, raw, baseline_out)
    ours_s, our_indices = run_ours(clips, raw, ours_out, workers)
    worst = worst_frame_difference(clips, raw, baseline_out, ours_out)
    return SetResult(name, len(clips), baseline_s, ours_s, baseline_indices == our_indices, worst)


def print_row(label: str, clips: int, baseline_s: float, ours_s: float) -> None:
    frames = clips * NUM_FRAMES
    print(
        f"{label:<30} {clips:>5} {baseline_s:>8.2f} {clips / baseline_s:>7.2f}"
        f" {frames / baseline_s:>8.1f} {ours_s:>8.2f} {clips / ours_s:>7.2f}"
        f" {frames / ours_s:>8.1f} {baseline_s / ours_s:>6.2f}x"
    )


def print_report(results: list[SetResult]) -> None:
    print(
        f"\n{'clip set':<30} {'clips':>5} {'base s':>8} {'clip/s':>7} {'frame/s':>8}"
        f" {'ours s':>8} {'clip/s':>7} {'frame/s':>8} {'ratio':>7}"
    )
    for result in results:
        print_row(result.name, result.clips, result.baseline_s, result.ours_s)
    total_baseline = sum(r.baseline_s for r in results)
    total_ours = sum(r.ours_s for r in results)
    print_row("overall", sum(r.clips for r in results), total_baseline, total_ours)
    for result in results:
        verdict = "same frames" if result.same_frames else "FRAMES DIFFER"
        print(
            f"{result.name}: same indices: {result.same_indices}; worst mean |baseline - ours|"
            f" per frame: {result.worst_difference:.2f} (limit {MAX_MEAN_ABS_DIFF}) -> {verdict}"
        )
    ratio = total_baseline / total_ours
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"overall speed-up {ratio:.2f}x (target {TARGET_RATIO:.0f}x: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer clips (same clip formats)")
    parser.add_argument("--workdir", type=Path, help="keep generated clips here and reuse them")
    parser.add_argument("--workers", type=int, default=2, help="processes for our converter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ucf101-") as scratch:
        raw = (args.workdir or Path(scratch)) / "raw"
        print(f"clips in {raw} ({os.cpu_count()} CPU cores, {args.workers} workers)", flush=True)
        clips = generate_clips(raw, args.quick)
        results = [
            bench_set(name, set_clips, raw, Path(scratch), args.workers)
            for name, set_clips in clips.items()
        ]
    print_report(results)
    return 0 if all(result.same_frames for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
