"""``kill -9`` at any moment, then ``--resume``: nothing half-written is visible, and the result is
byte-identical to an uninterrupted run. The kills are placed deterministically (see kill_during_convert.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from convert_doubles import snapshot

from phi3v_data.atomic import is_temporary
from phi3v_data.converters.registry import load_converter
from phi3v_data.converters.runner import run_conversion
from phi3v_data.converters.workdir import WORK_DIR_NAME

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "fixtures"
FOLDER_INPUT = FIXTURES / "folder" / "splits"
VIDEO_INPUT = FIXTURES / "ucf101" / "subset"

# folder/splits with one worker renames 21 files: job.json, then image + result for each of the 8
# items (2..17), the 3 JSONL files (18..20), manifest.json (21).
RENAME_MOMENTS = [
    "replace:1",
    "replace:2",
    "replace:3",
    "replace:10",
    "replace:17",
    "replace:18",
    "replace:20",
    "replace:21",
]


def convert(source: str, input_dir: Path, out: Path, workers: int = 1, mode: str = "new") -> None:
    converter = load_converter(source)
    run_conversion(converter, input_dir, out, converter.Options(), workers=workers, mode=mode)


def run_killer(source: str, input_dir: Path, out: Path, workers: int, moment: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(HERE / "kill_during_convert.py"),
        source,
        str(input_dir),
        str(out),
        str(workers),
        moment,
    ]
    return subprocess.run(command, start_new_session=True, capture_output=True, text=True, timeout=120)


def kill_during(source: str, input_dir: Path, out: Path, workers: int, moment: str) -> None:
    finished = run_killer(source, input_dir, out, workers, moment)
    assert finished.returncode == -signal.SIGKILL, finished.stderr


@pytest.fixture(scope="module")
def folder_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("reference") / "out"
    convert("folder", FOLDER_INPUT, out)
    return snapshot(out)


@pytest.mark.parametrize("moment", [*RENAME_MOMENTS, "cleanup"])
def test_a_kill_leaves_only_whole_files_and_resume_completes_the_same_bytes(
    tmp_path: Path, folder_reference: dict[str, bytes], moment: str
) -> None:
    out = tmp_path / "out"
    kill_during("folder", FOLDER_INPUT, out, 1, moment)

    for path, data in snapshot(out).items():
        if is_temporary(Path(path).name):
            continue
        if path.startswith(f"{WORK_DIR_NAME}/"):
            json.loads(data)  # job.json and item results are whole JSON documents
        else:
            assert data == folder_reference[path], f"{path} is not the file an uninterrupted run writes"

    convert("folder", FOLDER_INPUT, out, mode="resume")
    assert snapshot(out) == folder_reference


def test_killing_the_whole_pool_mid_run_then_resuming_gives_the_same_bytes(tmp_path: Path) -> None:
    convert("ucf101", VIDEO_INPUT, tmp_path / "reference", workers=2)
    kill_during("ucf101", VIDEO_INPUT, tmp_path / "out", 2, "item:3")
    assert not (tmp_path / "out" / "manifest.json").exists()

    convert("ucf101", VIDEO_INPUT, tmp_path / "out", workers=2, mode="resume")
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "reference")


def test_a_worker_killed_by_the_system_stops_the_run_and_resume_recovers(
    tmp_path: Path, folder_reference: dict[str, bytes]
) -> None:
    finished = run_killer("folder", FOLDER_INPUT, tmp_path / "out", 2, "worker:train/dog/c.png")
    assert finished.returncode == 3 and "a worker process died" in finished.stderr

    convert("folder", FOLDER_INPUT, tmp_path / "out", workers=2, mode="resume")
    assert snapshot(tmp_path / "out") == folder_reference
