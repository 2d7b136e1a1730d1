"""The manifest certifies a dataset only after a passing validation that opened the images, and only
while its JSONL files and every image they name are unchanged."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from phi3v_data.errors import UnvalidatedDatasetError
from phi3v_data import manifest as manifest_module
from phi3v_data.manifest import (
    Manifest,
    image_entries,
    image_mismatches,
    read_manifest,
    require_validated,
    split_entry,
    split_names,
    write_manifest,
)

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


IMAGES = {"a.png": b"first image", "sub/b.png": b"second image", "c.png": b"third"}


def with_images(tmp_path: Path, images: dict[str, bytes] = IMAGES) -> Path:
    """A certified dataset whose manifest lists ``images`` (written before it, as a converter does)."""
    for name, data in images.items():
        (tmp_path / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / name).write_bytes(data)
    jsonl = tmp_path / "demo_train.jsonl"
    jsonl.write_text('{"id": "1", "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}\n')
    index = image_entries(tmp_path / "images", [*images, *images])  # a path named twice is listed once
    write_manifest(tmp_path, Manifest(splits={"train": split_entry(jsonl, 1)}, validation=PASSING, images=index))
    return tmp_path


def test_the_image_index_holds_each_named_image_once_sorted_with_size_and_sha256(tmp_path: Path) -> None:
    folder = with_images(tmp_path)
    index = read_manifest(folder).images
    assert index is not None and list(index) == ["a.png", "c.png", "sub/b.png"]
    assert index["sub/b.png"].size == len(b"second image")
    assert index["sub/b.png"].sha256 == hashlib.sha256(b"second image").hexdigest()
    # Digests already known (a converter's) are taken as they are: nothing is hashed twice.
    known = image_entries(folder / "images", ["a.png", "c.png"], {"a.png": "known"})
    assert (known["a.png"].sha256, known["c.png"].sha256) == ("known", index["c.png"].sha256)


def test_unchanged_images_are_accepted(tmp_path: Path) -> None:
    assert require_validated(with_images(tmp_path)).images is not None


def test_an_image_replaced_after_validation_with_the_same_size_is_refused(tmp_path: Path) -> None:
    folder = with_images(tmp_path)
    (folder / "images" / "a.png").write_bytes(b"first IMAGE")
    with pytest.raises(UnvalidatedDatasetError) as refused:
        require_validated(folder)
    assert "images/a.png changed since it was validated (sha256 differs)" in str(refused.value)
    assert f"`phi3v-data validate {folder} --write-manifest`" in str(refused.value)


def test_a_replacement_is_found_even_when_its_modification_time_is_set_back(tmp_path: Path) -> None:
    folder = with_images(tmp_path)
    image = folder / "images" / "a.png"
    before = image.stat()
    image.write_bytes(b"first IMAGE")  # same size, and an mtime older than the manifest's, as `cp -p` can leave
    os.utime(image, ns=(before.st_atime_ns - 10**10, before.st_mtime_ns - 10**10))
    with pytest.raises(UnvalidatedDatasetError, match=r"images/a.png changed since it was validated \(sha256"):
        require_validated(folder)


def test_a_resized_or_deleted_image_is_refused_by_name(tmp_path: Path) -> None:
    folder = with_images(tmp_path)
    (folder / "images" / "sub" / "b.png").write_bytes(b"longer than it was")
    (folder / "images" / "c.png").unlink()
    with pytest.raises(UnvalidatedDatasetError) as refused:
        require_validated(folder)
    message = str(refused.value)
    assert "images/c.png is missing" in message
    assert "images/sub/b.png changed since it was validated (12 bytes then, 18 now)" in message
    assert "\n" not in message and "images/a.png" not in message


def test_only_images_touched_since_the_manifest_are_hashed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder = with_images(tmp_path)
    written = (folder / "manifest.json").stat().st_mtime_ns
    later = written + 10**9  # the manifest a second after the images: none was touched since
    os.utime(folder / "manifest.json", ns=(later, later))
    hashed: list[str] = []
    real = manifest_module.sha256_file

    def counting(path):  # type: ignore[no-untyped-def]
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(manifest_module, "sha256_file", counting)
    assert image_mismatches(folder, read_manifest(folder)) == []
    assert hashed == []
    os.utime(folder / "images" / "c.png", ns=(later, later))  # touched after the manifest: hashed, still the same
    assert image_mismatches(folder, read_manifest(folder)) == [] and hashed == ["c.png"]


def test_many_changed_images_make_one_line_that_names_the_first(tmp_path: Path) -> None:
    folder = with_images(tmp_path, {f"{number:02}.png": b"x" for number in range(12)})
    for number in range(12):
        (folder / "images" / f"{number:02}.png").unlink()
    with pytest.raises(UnvalidatedDatasetError) as refused:
        require_validated(folder)
    message = str(refused.value)
    assert "images/00.png is missing" in message and "images/04.png is missing" in message
    assert "images/05.png" not in message and "and 7 more images missing or changed" in message


def test_a_manifest_from_before_the_image_index_is_accepted_unchecked(tmp_path: Path) -> None:
    folder = with_images(tmp_path)
    old = read_manifest(folder).model_copy(update={"images": None})
    write_manifest(folder, old)
    assert "images" not in json.loads((folder / "manifest.json").read_text())
    (folder / "images" / "a.png").unlink()
    assert require_validated(folder).images is None


@pytest.mark.parametrize(
    ("options", "counted"),
    [
        ({"images": "header", "model": "phi35v", "num_crops": 16}, 16),
        ({"images": "header", "model": None, "num_crops": 16}, None),  # image tokens only: no lengths
        ({"images": "header"}, None),
    ],
)
def test_the_manifest_says_which_num_crops_its_lengths_were_counted_at(options: dict, counted: int | None) -> None:
    assert Manifest(validation={"ok": True, "options": options}).lengths_num_crops == counted
