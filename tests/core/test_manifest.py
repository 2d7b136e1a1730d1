"""The manifest certifies a dataset only after a passing validation that opened the images."""

from pathlib import Path

import pytest

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data.manifest import Manifest, require_validated, split_entry, split_names, write_manifest

PASSING = {"ok": True, "options": {"images": "header"}}


def dataset(tmp_path: Path, validation: dict | None) -> Path:
    jsonl = tmp_path / "demo_train.jsonl"
    jsonl.write_text('{"id": "1", "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}\n')
    write_manifest(tmp_path, Manifest(splits={"train": split_entry(jsonl, 1)}, validation=validation))
    return tmp_path


def test_a_passing_header_validation_certifies(tmp_path: Path) -> None:
    assert require_validated(dataset(tmp_path, PASSING)).splits["train"].records == 1


@pytest.mark.parametrize(
    "validation",
    [None, {"ok": False, "options": {"images": "header"}}, {"ok": True, "options": {"images": "none"}},
     {"ok": True, "options": {"images": "exists"}}],
    ids=["never-validated", "failed", "images-none", "images-exists"],
)
def test_anything_less_is_refused_with_the_command_to_run(tmp_path: Path, validation: dict | None) -> None:
    with pytest.raises(UnvalidatedDatasetError, match="--write-manifest"):
        require_validated(dataset(tmp_path, validation))


def test_an_edited_file_is_refused(tmp_path: Path) -> None:
    folder = dataset(tmp_path, PASSING)
    (folder / "demo_train.jsonl").write_text("changed\n")
    with pytest.raises(UnvalidatedDatasetError, match="changed since it was validated"):
        require_validated(folder)


def test_split_names_come_from_distinct_known_suffixes() -> None:
    files = [Path("ucf101_train.jsonl"), Path("ucf101_val.jsonl")]
    assert split_names(files) == {"train": files[0], "val": files[1]}


@pytest.mark.parametrize(
    "names", [["a_train.jsonl", "b_train.jsonl"], ["x_train.jsonl", "notes.jsonl"]], ids=["clash", "unknown"]
)
def test_otherwise_every_file_keeps_its_stem_and_none_is_lost(names: list[str]) -> None:
    files = [Path(name) for name in names]
    assert split_names(files) == {file.stem: file for file in files}
