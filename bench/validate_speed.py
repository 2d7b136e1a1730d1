"""Speed and memory of ``phi3v-data validate``, against the obvious alternatives, in one run.

Every figure is a whole command run in a fresh subprocess (interpreter start-up included), timed
as wall-clock seconds; each is repeated and the best run kept, since other load on the machine can
only slow a run down. The CPU seconds of that run (all its processes) are shown too: on a shared
machine they move less than wall time. Ratios are computed from figures of the same run::

    python bench/validate_speed.py                # 200,000 records, 1,000,000 for memory
    python bench/validate_speed.py --quick        # smaller sizes, a minute or so

1. Lines, ``--images none``, on UCF-style records (8 frames each):
   - a per-line ``json.loads`` + ``jsonschema`` loop over the generated schema (target: >= 5x slower),
   - a per-line ``orjson.loads`` loop (target: validate within 3x of it).
2. Peak RSS of ``validate --images none`` at two sizes, one process (``--workers 1``) and the default.
3. Header-mode image checks: images/s of ``validate --images header`` (1 worker, all workers) against
   a loop that opens and verifies each image with Pillow.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO_ROOT / "schema" / "record.schema.json"
CLASSES = [
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam",
    "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress",
]  # fmt: skip
USER_TEXT = f"Classify the video into one of the following classes: {', '.join(CLASSES)}."
FRAMES = 8

JSONSCHEMA_LOOP = """
import json, sys
from jsonschema import Draft202012Validator
validator = Draft202012Validator(json.load(open(sys.argv[2])))
with open(sys.argv[1], "rb") as lines:
    for line in lines:
        validator.validate(json.loads(line))
"""
ORJSON_LOOP = """
import orjson, sys
with open(sys.argv[1], "rb") as lines:
    for line in lines:
        orjson.loads(line)
"""
PILLOW_VERIFY_LOOP = """
import sys
from PIL import Image
for path in open(sys.argv[1], encoding="utf-8").read().splitlines():
    with Image.open(path) as image:
        image.verify()
"""
# Runs a command as its only child, then prints the child's peak resident set size in KiB.
PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def ucf_line(index: int) -> bytes:
    label = CLASSES[index % len(CLASSES)]
    clip = f"{label}/v_{label}_g{index // 7 % 25 + 1:02d}_c{index % 7 + 1:02d}_{index}"
    record = {
        "id": f"train-{index:010d}",
        "source": "ucf101",
        "conversations": [
            {"images": [f"train/{clip}.{frame}.jpg" for frame in range(FRAMES)], "user": USER_TEXT, "assistant": label}
        ],
    }
    return json.dumps(record).encode() + b"\n"


def write_ucf_jsonl(path: Path, records: int) -> Path:
    with open(path, "wb") as file:
        for start in range(0, records, 10_000):
            file.write(b"".join(ucf_line(index) for index in range(start, min(records, start + 10_000))))
    return path


def validate_command() -> list[str]:
    script = Path(sys.executable).parent / "phi3v-data"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from phi3v_data.cli import main; main()"]


def best_time(command: list[str], repeats: int) -> tuple[float, float]:
    """Wall and CPU seconds of the fastest of ``repeats`` runs of a command (it must succeed)."""
    runs = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append((wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
    return min(runs)


def print_rows(rows: list[tuple[str, tuple[float, float]]], count: int, unit: str) -> None:
    for name, (wall, cpu) in rows:
        print(f"  {name:48s} {wall:7.2f} s  {count / wall:>10,.0f} {unit}/s   CPU {cpu:6.2f} s")


def peak_rss_mib(command: list[str]) -> float:
    output = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], check=True, capture_output=True, text=True)
    return int(output.stdout) / 1024


def bench_lines(folder: Path, records: int, repeats: int) -> None:
    data = write_ucf_jsonl(folder / "ucf.jsonl", records)
    size_mb = data.stat().st_size / 1e6
    print(f"\n## Lines: {records:,} UCF-style records, {size_mb:.0f} MB, --images none (best of {repeats})")
    ours = best_time([*validate_command(), "validate", str(data), "--images", "none"], repeats)
    ours_one = best_time([*validate_command(), "validate", str(data), "--images", "none", "--workers", "1"], repeats)
    orjson_loop = best_time([sys.executable, "-c", ORJSON_LOOP, str(data)], repeats)
    schema_loop = best_time([sys.executable, "-c", JSONSCHEMA_LOOP, str(data), str(SCHEMA_FILE)], 1)
    print_rows(
        [
            ("phi3v-data validate --images none", ours),
            ("phi3v-data validate --images none --workers 1", ours_one),
            ("orjson.loads per line", orjson_loop),
            ("json.loads + jsonschema per line (1 run)", schema_loop),
        ],
        records,
        "records",
    )
    print(f"  speed-up over json.loads + jsonschema: {schema_loop[0] / ours[0]:.1f}x (target >= 5x)")
    print(f"  time relative to the orjson loop:      {ours[0] / orjson_loop[0]:.2f}x (target <= 3x)")


def bench_memory(folder: Path, sizes: list[int]) -> None:
    print("\n## Peak RSS of validate --images none (largest single process)")
    for records in sizes:
        data = write_ucf_jsonl(folder / f"ucf-{records}.jsonl", records)
        for workers in ("1", str(os.cpu_count() or 1)):
            command = [*validate_command(), "validate", str(data), "--images", "none", "--workers", workers]
            print(f"  {records:>10,} records, --workers {workers}: {peak_rss_mib(command):7.1f} MiB")
        data.unlink()


def write_frames(folder: Path, count: int) -> tuple[Path, Path]:
    """``count`` 320x240 JPEG frames, a JSONL using them 8 per record, and a list of their paths."""
    images = folder / "images"
    (images / "frames").mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 30)).save(buffer, "JPEG", quality=85)
    paths = []
    for index in range(count):
        path = images / "frames" / f"{index:06d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    data = folder / "frames.jsonl"
    with open(data, "w", encoding="utf-8") as file:
        for start in range(0, count, FRAMES):
            names = [f"frames/{index:06d}.jpg" for index in range(start, min(count, start + FRAMES))]
            turn = {"images": names, "user": USER_TEXT, "assistant": "Archery"}
            file.write(json.dumps({"id": f"r{start}", "source": "bench", "conversations": [turn]}) + "\n")
    listing = folder / "frames.txt"
    listing.write_text("\n".join(str(path) for path in paths), encoding="utf-8")
    return data, listing


def bench_images(folder: Path, count: int, repeats: int) -> None:
    data, listing = write_frames(folder, count)
    print(f"\n## Images: {count:,} JPEG frames (320x240), header mode (best of {repeats})")
    command = [*validate_command(), "validate", str(data), "--images", "header"]
    pillow = [sys.executable, "-c", PILLOW_VERIFY_LOOP, str(listing)]
    ours = best_time(command, repeats)
    ours_one = best_time([*command, "--workers", "1"], repeats)
    verify = best_time(pillow, repeats)
    print_rows(
        [
            ("phi3v-data validate --images header", ours),
            ("phi3v-data validate --images header --workers 1", ours_one),
            ("Pillow open + verify per image (1 process)", verify),
        ],
        count,
        "images",
    )
    print(f"  validate (all workers) vs Pillow verify: {verify[0] / ours[0]:.2f}x the images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run, not the figures")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    records, memory_sizes, images = (20_000, [20_000, 100_000], 2_000) if args.quick else (
        200_000, [200_000, 1_000_000], 16_000)  # fmt: skip
    print("# phi3v-data validate benchmark")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
    # Other work on the machine slows the wall times (and a busy second core hides the parallel speed-up).
    print(f"load average before the run: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="phi3v-bench-") as temporary:
        folder = Path(temporary)
        bench_lines(folder, records, args.repeats)
        bench_memory(folder, memory_sizes)
        bench_images(folder, images, args.repeats)


if __name__ == "__main__":
    main()
