"""``folder``: layouts, what is ignored or rejected, and the seeded val/test carve-out."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from phi3v_data.converters.folder import FolderConverter, FolderOptions
from phi3v_data.errors import InputLayoutError, UsageError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "folder"
JPEG = (FIXTURES / "splits" / "train" / "cat" / "a.jpg").read_bytes()


def plan(input_dir: Path, **options):
    return FolderConverter().plan(input_dir, FolderOptions(**options))


def make_tree(root: Path, paths: list[str]) -> Path:
    for relative in paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(JPEG)
    return root


def test_a_tree_without_split_folders_is_all_train_labelled_by_folder() -> None:
    result = plan(FIXTURES / "classes")
    assert {item.split for item in result.items} == {"train"}
    labels = {item.key: item.payload["label"] for item in result.items}
    assert labels["cat/indoor/d.webp"] == "cat" and labels["dog/f.bmp"] == "dog"
    assert [item.index for item in result.items] == list(range(len(result.items)))
    assert result.items[0].payload["user"] == "Classify the image into one of the following classes: cat, dog."
    # README.md and notes.txt are not data, .DS_Store is hidden: counted, never rejected.
    assert result.ignored == {"hidden": 1, "unused": 2}
    assert dict(result.rejected)["stray.jpg"] == "not inside a class folder, so it has no label"


def test_split_folders_give_the_splits() -> None:
    result = plan(FIXTURES / "splits")
    assert [(item.split, item.index, item.key) for item in result.items][:3] == [
        ("train", 0, "train/cat/a.jpg"),
        ("train", 1, "train/cat/b.jpg"),
        ("train", 2, "train/dog/c.png"),
    ]
    assert [item.split for item in result.items].count("val") == 2


def test_extensions_are_matched_in_any_case_and_hidden_folders_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["owl/A.JPG", "owl/b.Jpeg", "owl/c.TIFF", "__MACOSX/owl/._A.JPG", "owl/.hidden.jpg"])
    result = plan(root)
    assert [item.key for item in result.items] == ["owl/A.JPG", "owl/b.Jpeg", "owl/c.TIFF"]
    assert result.ignored == {"hidden": 2}


def test_mixing_split_folders_with_class_folders_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["train/cat/a.jpg", "dog/b.jpg"])
    with pytest.raises(InputLayoutError, match=r"mixes split folders \(train\) with other folders \(dog\)"):
        plan(root)


def test_a_folder_without_images_is_not_the_layout(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.avi").write_bytes(b"RIFF")
    with pytest.raises(InputLayoutError, match="holds 1 .avi file there"):
        plan(tmp_path)


def test_fractions_apply_only_without_split_folders() -> None:
    with pytest.raises(UsageError, match="already has split folders"):
        plan(FIXTURES / "splits", val_fraction=0.2)
    with pytest.raises(ValidationError, match="must stay below 1"):
        FolderOptions(val_fraction=0.5, test_fraction=0.5)


def test_the_carve_out_is_per_class_rounded_down_seeded_and_stable(tmp_path: Path) -> None:
    root = make_tree(tmp_path, [f"cat/{n:02d}.jpg" for n in range(10)] + [f"dog/{n:02d}.jpg" for n in range(3)])

    def splits(seed: int) -> dict[str, set[str]]:
        result = plan(root, val_fraction=0.2, test_fraction=0.1, seed=seed)
        return {split: {item.key for item in result.items if item.split == split} for split in ("train", "val", "test")}

    first = splits(seed=0)
    assert [len([key for key in first[split] if key.startswith("cat/")]) for split in ("train", "val", "test")] == [
        7,
        2,
        1,
    ]
    assert all(key.startswith("cat/") for key in first["val"] | first["test"])  # 3 dogs: 0.6 and 0.3 round down
    assert first == splits(seed=0)
    assert first != splits(seed=1)
