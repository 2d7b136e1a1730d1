"""The runner with a scripted source: output layout, determinism, rejections, OUT-folder rules, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from convert_doubles import ScriptedConverter, ScriptedOptions, snapshot, write_items
from image_source_golden import assert_manifest_lists_the_images

from phi3v_data.converters.runner import ConversionError, run_conversion
from phi3v_data.converters.workdir import WORK_DIR_NAME
from phi3v_data.errors import FileNotFoundPhi3vDataError, InputLayoutError, UnvalidatedDatasetError, UsageError
from phi3v_data.manifest import Manifest, require_validated, write_manifest

CLEAN = {f"{split}/{name}.txt": "ok" for split in ("train", "val") for name in "abcde"}


def convert(raw: Path, out: Path, **settings) -> object:
    options = settings.pop("options", ScriptedOptions())
    return run_conversion(ScriptedConverter(), raw, out, options, **{"workers": 1, **settings})


def test_writes_the_cookbook_layout_and_a_manifest_the_trainer_accepts(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", {**CLEAN, "README.md": "notes"})
    report = convert(raw, tmp_path / "out")

    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [
        "images",
        "manifest.json",
        "scripted_train.jsonl",
        "scripted_val.jsonl",
    ]
    lines = (out / "scripted_val.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"val-{index:010d}" for index in range(5)]
    assert (out / "images" / "val" / "a.png").is_file()
    manifest = require_validated(out)  # every JSONL listed with its current sha256
    assert manifest.converter.name == "scripted" and manifest.converter.options == {"answer": "yes"}
    assert {split: entry.records for split, entry in manifest.splits.items()} == {"train": 5, "val": 5}
    assert manifest.counts["ignored"] == 1 and manifest.validation["ok"] is True
    assert report.exit_code == 0 and report.converted_now == 10


def test_the_manifest_lists_every_image_and_the_trainer_refuses_one_replaced_later(tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert(write_items(tmp_path / "raw", CLEAN), out)
    assert_manifest_lists_the_images(out)  # sizes and sha256s of the bytes written, for every named image
    assert len(require_validated(out).images) == 10
    (out / "images" / "val" / "a.png").write_bytes(b"another picture")
    with pytest.raises(UnvalidatedDatasetError, match=r"images/val/a.png changed since it was validated"):
        require_validated(out)


def test_output_bytes_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", CLEAN)
    convert(raw, tmp_path / "one", workers=1)
    convert(raw, tmp_path / "two", workers=2)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")


def test_each_broken_item_is_rejected_with_its_reason_and_the_rest_is_written(tmp_path: Path) -> None:
    items = {
        "train/a.txt": "ok",
        "train/b.txt": "reject",
        "train/c.txt": "raise",
        "train/d.txt": "unsafe",
        "train/e.txt": "dangling",
    }
    raw = write_items(tmp_path / "raw", items)
    report = convert(raw, tmp_path / "out", workers=2)

    reasons = {rejection.input: rejection.reason for rejection in report.rejected}
    assert reasons["train/b.txt"] == "told to reject it"
    assert "RuntimeError: boom" in reasons["train/c.txt"]
    assert "unsafe image path" in reasons["train/d.txt"]
    assert "unwritten images ['nowhere.png']" in reasons["train/e.txt"]
    assert report.exit_code == 1
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "out" / "escape.png").exists()
    assert not (tmp_path / "out" / "images" / "train" / "e.png").exists()  # a rejected item leaves no image
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [entry["input"] for entry in manifest["rejected"]] == [
        "train/b.txt",
        "train/c.txt",
        "train/d.txt",
        "train/e.txt",
    ]
    assert manifest["splits"]["train"]["records"] == 1


def test_when_every_item_is_rejected_the_manifest_still_says_why(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", {"train/a.txt": "reject"})
    report = convert(raw, tmp_path / "out")
    assert report.exit_code == 1 and report.manifest.splits == {} and report.manifest.validation is None
    assert list((tmp_path / "out").glob("*.jsonl")) == []


def test_two_items_may_share_an_image_only_with_equal_bytes(tmp_path: Path) -> None:
    agreeing = write_items(tmp_path / "agree", {"train/a.txt": "shared 7", "train/b.txt": "shared 7"})
    assert convert(agreeing, tmp_path / "out1").manifest.counts["images"] == 1
    clashing = write_items(tmp_path / "clash", {"train/a.txt": "shared 7", "train/b.txt": "shared 8"})
    with pytest.raises(ConversionError, match="both write images/shared.png with different bytes"):
        convert(clashing, tmp_path / "out2")


def test_a_folder_that_is_not_the_layout_writes_nothing(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", {"videos/clip.avi": "not text"})
    with pytest.raises(InputLayoutError, match="expected <split>/<name>.txt"):
        convert(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_input_and_nested_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundPhi3vDataError):
        convert(tmp_path / "absent", tmp_path / "out")
    raw = write_items(tmp_path / "raw", CLEAN)
    with pytest.raises(UsageError, match="must not contain one another"):
        convert(raw, raw / "out")


def test_a_non_empty_out_is_refused_without_resume_or_overwrite(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", CLEAN)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        convert(raw, tmp_path / "out")
    with pytest.raises(UsageError, match="not a phi3v-data conversion's output"):
        convert(raw, tmp_path / "out", mode="overwrite")
    assert snapshot(tmp_path / "out") == {"notes.txt": b"mine"}


def test_overwrite_spares_a_hand_made_dataset_with_a_validation_manifest(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", CLEAN)
    hand_made = tmp_path / "out"
    (hand_made / "images").mkdir(parents=True)
    (hand_made / "images" / "photo.jpg").write_bytes(b"precious")
    write_manifest(hand_made, Manifest())  # what `phi3v-data validate --write-manifest` leaves
    before = snapshot(hand_made)
    with pytest.raises(UsageError, match="not a phi3v-data conversion's output"):
        convert(raw, hand_made, mode="overwrite")
    assert snapshot(hand_made) == before


def test_overwrite_replaces_a_previous_conversion(tmp_path: Path) -> None:
    old = write_items(tmp_path / "old", {"test/z.txt": "ok"})
    new = write_items(tmp_path / "new", CLEAN)
    convert(old, tmp_path / "out")
    convert(new, tmp_path / "out", mode="overwrite")
    convert(new, tmp_path / "reference")
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "reference")


def test_resume_finishes_an_interrupted_run_converting_only_what_is_left(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", {**CLEAN, "val/c.txt": "interrupt"})
    (raw / "armed").touch()
    with pytest.raises(KeyboardInterrupt):
        convert(raw, tmp_path / "out")
    assert (tmp_path / "out" / WORK_DIR_NAME).is_dir() and not (tmp_path / "out" / "manifest.json").exists()
    (raw / "armed").unlink()
    stray = tmp_path / "out" / "images" / "val" / ".tmp-c.png.x1y2"  # what a kill mid-write leaves
    stray.write_bytes(b"half")

    report = convert(raw, tmp_path / "out", mode="resume")

    assert report.converted_now == 3  # val/c, val/d, val/e; the 7 before the interrupt were kept
    convert(raw, tmp_path / "reference")
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "reference")


def test_resume_refuses_another_job(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", {**CLEAN, "val/c.txt": "interrupt"})
    (raw / "armed").touch()
    with pytest.raises(KeyboardInterrupt):
        convert(raw, tmp_path / "out")
    with pytest.raises(UsageError, match=r"other options \(answer: 'yes' then, 'no' now\)"):
        convert(raw, tmp_path / "out", mode="resume", options=ScriptedOptions(answer="no"))
    (raw / "train" / "f.txt").write_text("ok")
    with pytest.raises(UsageError, match="the input folder changed"):
        convert(raw, tmp_path / "out", mode="resume")


def test_resume_of_a_finished_conversion_says_there_is_nothing_to_do(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", CLEAN)
    convert(raw, tmp_path / "out")
    with pytest.raises(UsageError, match="finished conversion, there is nothing to resume"):
        convert(raw, tmp_path / "out", mode="resume")


def test_resume_into_an_empty_folder_is_a_fresh_run(tmp_path: Path) -> None:
    raw = write_items(tmp_path / "raw", CLEAN)
    (tmp_path / "out").mkdir()
    assert convert(raw, tmp_path / "out", mode="resume").converted_now == 10


def test_a_plan_with_duplicate_keys_is_a_converter_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = write_items(tmp_path / "raw", CLEAN)
    original = ScriptedConverter.plan

    def duplicated(self, input_dir, options):
        plan = original(self, input_dir, options)
        plan.items.append(plan.items[0])
        return plan

    monkeypatch.setattr(ScriptedConverter, "plan", duplicated)
    with pytest.raises(ConversionError, match="two items with the key 'train/a.txt'"):
        convert(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
