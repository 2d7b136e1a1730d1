"""What the trainer checks first, with no model loaded: the manifest still matches every image, and
lengths certified at another num_crops are recounted (with a note) rather than trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from train_fixtures import MIXED_RECORDS, TINY_MODEL, VAL_RECORD, train_config, write_dataset

from phi3v_data.errors import UnvalidatedDatasetError, UsageError
from phi3v_data.manifest import read_manifest, require_validated, write_manifest
from phi3v_data.validation import validate
from phi3v_data.validation.manifest import write_validated_manifest
from phi3v_train.cli import main
from phi3v_train.data import default_num_crops, load_split
from phi3v_train.validated import manifest_notes, open_dataset

IMAGES = {"wide.jpg": Image.new("RGB", (64, 48), (200, 40, 40)), "tall.png": Image.new("RGB", (30, 60), (40, 40, 200))}


@pytest.fixture
def certified(tmp_path: Path) -> Path:
    """A hand-made dataset certified with `phi3v-data validate DIR --write-manifest`."""
    return write_dataset(tmp_path / "ds", {"train": MIXED_RECORDS[:1] + MIXED_RECORDS[2:], "val": [VAL_RECORD]}, IMAGES)


def test_an_unchanged_dataset_opens(certified: Path) -> None:
    manifest = open_dataset(certified, validate_now=False)
    assert manifest.images is not None and sorted(manifest.images) == ["tall.png", "wide.jpg"]


def test_an_image_replaced_after_validation_is_refused_before_any_model_loads(certified: Path) -> None:
    Image.new("RGB", (64, 48), (0, 0, 0)).save(certified / "images" / "wide.jpg")  # same name, other bytes
    with pytest.raises(UnvalidatedDatasetError) as refused:
        open_dataset(certified, validate_now=False)
    message = str(refused.value)
    assert "images/wide.jpg changed since it was validated" in message and "tall.png" not in message
    assert f"`phi3v-data validate {certified} --write-manifest`" in message


def test_a_deleted_image_is_refused(certified: Path) -> None:
    (certified / "images" / "tall.png").unlink()
    with pytest.raises(UnvalidatedDatasetError, match=r"images/tall.png is missing\. Validate it again with"):
        open_dataset(certified, validate_now=False)


def test_validating_again_certifies_the_new_image(certified: Path) -> None:
    Image.new("RGB", (64, 48), (0, 0, 0)).save(certified / "images" / "wide.jpg")
    write_validated_manifest(certified, validate([certified], workers=1))
    assert open_dataset(certified, validate_now=False).images is not None


def test_a_manifest_from_before_the_image_index_opens_with_a_note(certified: Path, tmp_path: Path) -> None:
    write_manifest(certified, read_manifest(certified).model_copy(update={"images": None}))
    manifest = open_dataset(certified, validate_now=False)  # accepted: its images cannot be compared
    config = train_config(tmp_path / "out", [certified])
    (note,) = manifest_notes(config, lambda folder: manifest, num_crops=1)
    assert note.startswith(f"{certified}/manifest.json predates the image index") and "--write-manifest" in note
    validated_now = train_config(tmp_path / "out", [certified], validate=True)
    assert manifest_notes(validated_now, lambda folder: open_dataset(folder, True), num_crops=1) == []


def test_validate_and_train_choose_the_same_num_crops_by_default(mixed_dataset: Path, folder_dataset: Path) -> None:
    for folder, expected in ((mixed_dataset, 4), (folder_dataset, 16)):
        train = load_split(folder, require_validated(folder), "train")
        assert default_num_crops(train) == validate([folder], workers=1).options["num_crops"] == expected


def certified_at(folder: Path, num_crops: int) -> Path:
    """The dataset's manifest rewritten as `validate --model --num-crops N --write-manifest` writes it."""
    write_validated_manifest(folder, validate([folder], model_dir=TINY_MODEL, num_crops=num_crops, workers=1))
    return folder


def test_lengths_certified_at_another_num_crops_are_recounted_with_a_note(certified: Path, tmp_path: Path) -> None:
    manifest = require_validated(certified_at(certified, 4))
    longest = manifest.validation["tokens"]["max"]
    config = train_config(tmp_path / "out", [certified], eval_data=certified)
    (note,) = manifest_notes(config, lambda folder: manifest, num_crops=16)  # one folder, one note
    assert note == (
        f"{certified} was validated with lengths counted at num_crops 4 (at most {longest:,} tokens); this run uses "
        "num_crops 16, so every length is recounted at 16 (--max-length applies to the recount)"
    )
    assert manifest_notes(config, lambda folder: manifest, num_crops=4) == []


def test_a_lengths_file_counted_at_another_num_crops_is_refused(certified: Path, tmp_path: Path) -> None:
    lengths = tmp_path / "lengths.jsonl"
    write_validated_manifest(
        certified, validate([certified], model_dir=TINY_MODEL, num_crops=4, lengths_file=lengths, workers=1)
    )
    manifest = require_validated(certified)
    config = train_config(tmp_path / "out", [certified], group_by_length=True, lengths=lengths)
    with pytest.raises(UsageError, match=r"--lengths .*counted at num_crops 4, this run uses num_crops 1.*--num-crops 1 --lengths"):
        manifest_notes(config, lambda folder: manifest, num_crops=1)
    assert manifest_notes(config, lambda folder: manifest, num_crops=4) == []


def test_a_manifest_without_lengths_needs_no_note(certified: Path, tmp_path: Path) -> None:
    manifest = require_validated(certified)  # validated without --model: no lengths were counted
    assert manifest.lengths_num_crops is None
    assert manifest_notes(train_config(tmp_path / "out", [certified]), lambda folder: manifest, num_crops=16) == []


def test_phi3v_train_refuses_a_replaced_image_with_the_command_to_run(folder_dataset: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(folder_dataset, changed)  # a copy: every image is newer than the manifest, and hashed
    image = sorted(json.loads(read_manifest(changed).model_dump_json())["images"])[0]
    (changed / "images" / image).write_bytes((changed / "images" / image).read_bytes()[::-1])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--data", str(changed), "--model", str(TINY_MODEL), "--mode", "lora", "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    assert f"images/{image} changed since it was validated (sha256 differs)" in result.stderr
    assert f"phi3v-data validate {changed} --write-manifest" in result.stderr
    assert "Traceback" not in result.output and not out.exists()
