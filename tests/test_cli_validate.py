"""`phi3v-data validate`: exit codes, output formats, files it writes, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from phi3v_data.cli import main
from phi3v_data.cli import validate as validate_cli
from phi3v_data.manifest import require_validated

MODEL_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "phi35v"
GOOD = '{"id": "%s", "source": "cli", "conversations": [{"user": "Hi", "assistant": "Hello"}]}'


def dataset(folder: Path, *lines: str, name: str = "train.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


def invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_a_clean_dataset_exits_0_with_a_summary(tmp_path: Path) -> None:
    result = invoke(dataset(tmp_path, GOOD % "a", GOOD % "b"), "--workers", "1")
    assert result.exit_code == 0
    assert result.output == "1 file, 2 records: 0 errors, 0 warnings\n"


def test_errors_exit_1_and_warnings_only_with_strict(tmp_path: Path) -> None:
    errors = dataset(tmp_path / "errors", GOOD % "a", "{oops")
    assert invoke(errors).exit_code == 1
    warnings = dataset(
        tmp_path / "warnings",
        '{"id": "a", "source": "s", "extra": 1, "conversations": [{"user": "u", "assistant": "a"}]}',
    )
    assert invoke(warnings).exit_code == 0
    assert invoke(warnings, "--strict").exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{empty_dir}"], "holds no .jsonl file"),
        (["{data}", "--max-length", "100"], "needs the model's tokenizer files: pass --model DIR"),
        (["{data}", "--model", "{empty_dir}"], "lacks tokenizer.json"),
        (["{data}", "--write-manifest", "{data}/train.jsonl"], "exactly one PATH"),
        (["{data}", "--write-manifest", "--images", "none"], "certifies the images too"),
        (["{data}", "--write-manifest", "--images", "exists"], "certifies the images too"),
        (["{data}", "--output", "{empty_dir}"], "is a directory"),
        (["{data}", "--output", "{data}/train.jsonl/report.txt"], "phi3v-data validate: cannot write"),
    ],
)
def test_usage_errors_exit_2_with_one_sentence(tmp_path: Path, args: list[str], message: str) -> None:
    places = {"missing": tmp_path / "missing.jsonl", "empty_dir": tmp_path / "empty", "data": tmp_path / "data"}
    places["empty_dir"].mkdir()
    dataset(places["data"], GOOD % "a")
    result = CliRunner().invoke(main, ["validate", *(arg.format(**places) for arg in args)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_an_internal_error_exits_2_without_a_traceback(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyError("bug")

    monkeypatch.setattr(validate_cli, "run_validation", broken)
    result = invoke(dataset(tmp_path, GOOD % "a"))
    assert result.exit_code == 2
    assert result.output == "phi3v-data validate: internal error (KeyError: 'bug'); please report it\n"


def test_json_format_to_an_output_file(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "report.json"
    result = invoke(dataset(tmp_path / "d", GOOD % "a", GOOD % "a"), "--format", "json", "--output", report)
    assert result.exit_code == 1 and result.output == ""
    document = json.loads(report.read_text())
    assert (document["ok"], document["records"], document["errors"]) == (False, 2, 1)
    assert document["problems"][0]["code"] == "id-duplicate" and document["problems"][0]["line"] == 2


@pytest.mark.parametrize(("output_format", "start"), [("github", "::error file="), ("junit", "<?xml")])
def test_ci_formats(tmp_path: Path, output_format: str, start: str) -> None:
    result = invoke(dataset(tmp_path, "[]"), "--format", output_format)
    assert result.exit_code == 1 and result.output.startswith(start)


def test_lengths_with_a_model(tmp_path: Path) -> None:
    lengths = tmp_path / "lengths.jsonl"
    result = invoke(
        dataset(tmp_path / "d", GOOD % "a"), "--model", MODEL_DIR, "--lengths", lengths, "--max-length", "4096"
    )
    assert result.exit_code == 0, result.output
    (written,) = [json.loads(line) for line in lengths.read_text().splitlines()]
    assert written["id"] == "a" and written["line"] == 1 and written["tokens"] > 5
    assert "tokens per record (1 record)" in result.output


def test_write_manifest_only_for_a_clean_dataset(tmp_path: Path) -> None:
    bad = dataset(tmp_path / "bad", "{oops")
    result = invoke(bad, "--write-manifest")
    assert result.exit_code == 1 and "manifest.json not written" in result.output
    assert not (bad / "manifest.json").exists()

    good = dataset(tmp_path / "good", GOOD % "a", name="mine_train.jsonl")
    dataset(good, GOOD % "b", GOOD % "c", name="mine_val.jsonl")
    result = invoke(good, "--write-manifest")
    assert result.exit_code == 0 and "manifest.json" in result.output
    manifest = require_validated(good)  # the trainer's check passes
    assert {name: entry.records for name, entry in manifest.splits.items()} == {"train": 1, "val": 2}
    assert manifest.validation is not None and manifest.validation["ok"] is True


def test_the_installed_command_runs_in_a_fresh_process(tmp_path: Path) -> None:
    data = dataset(tmp_path, GOOD % "a", "\xff not json")
    command = [sys.executable, "-c", "from phi3v_data.cli import main; main()", "validate", str(data)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == f"{data / 'train.jsonl'}:2: line-invalid-json Expecting value at column 1"
    missing = subprocess.run([*command[:-1], str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "does not exist" in missing.stderr


def test_write_manifest_lists_the_images_and_the_num_crops_its_lengths_were_counted_at(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "d"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (320, 240)).save(folder / "images" / "page.png")
    line = '{"id": "a", "source": "cli", "conversations": [{"images": ["page.png"], "user": "Hi", "assistant": "Yo"}]}'
    dataset(folder, line, GOOD % "b", name="d_train.jsonl")
    result = invoke(folder, "--model", MODEL_DIR, "--write-manifest", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "tokens per record (2 records) at num_crops 16 (the default: no record holds several images)" in result.output
    manifest = require_validated(folder)
    assert manifest.lengths_num_crops == 16 and manifest.validation["options"]["num_crops_given"] is False
    assert manifest.images is not None and list(manifest.images) == ["page.png"]
    assert manifest.images["page.png"].size == (folder / "images" / "page.png").stat().st_size

    result = invoke(folder, "--model", MODEL_DIR, "--num-crops", "4", "--write-manifest", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["options"]["num_crops"] == 4
    assert require_validated(folder).lengths_num_crops == 4


def test_write_manifest_refuses_an_images_root_the_trainer_would_not_read(tmp_path: Path) -> None:
    folder = dataset(tmp_path / "d", GOOD % "a")
    (tmp_path / "elsewhere").mkdir()
    result = invoke(folder, "--images-root", tmp_path / "elsewhere", "--write-manifest")
    assert result.exit_code == 2 and "where the trainer reads the images: drop --images-root" in result.output
    assert "Traceback" not in result.output and not (folder / "manifest.json").exists()
    assert invoke(folder, "--images-root", folder / "images", "--write-manifest").exit_code == 0
