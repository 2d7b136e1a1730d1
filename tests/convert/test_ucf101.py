"""``ucf101``: both layouts, labels from folders, group-wise val, broken and short clips, exact frames."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from phi3v_data.converters.runner import run_conversion
from phi3v_data.converters.ucf101 import Ucf101Converter, Ucf101Options
from phi3v_data.converters.video import encode_jpeg
from phi3v_data.errors import InputLayoutError, UsageError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ucf101"
OFFICIAL = FIXTURES / "official"
SUBSET = FIXTURES / "subset"


def plan(input_dir: Path, **options):
    return Ucf101Converter().plan(input_dir, Ucf101Options(**options))


def convert(input_dir: Path, out: Path, **options):
    return run_conversion(Ucf101Converter(), input_dir, out, Ucf101Options(**options), workers=2)


def group_of(key: str) -> int:
    return int(re.search(r"_g(\d+)_c", key).group(1))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("*.jsonl")) for line in path.read_text().splitlines()]


def test_labels_come_from_the_class_folder_never_the_file_name() -> None:
    items = plan(OFFICIAL).items
    handstand = [item for item in items if "HandStandPushups" in item.key]
    assert handstand and {item.payload["label"] for item in handstand} == {"HandstandPushups"}
    assert handstand[0].payload["image_prefix"].split("/")[1] == "HandstandPushups"
    assert items[0].payload["user"] == (
        "Classify the video into one of the following classes: ApplyEyeMakeup, Basketball, HandstandPushups."
    )


@pytest.mark.parametrize(
    ("split_id", "test_group", "train_group", "val_groups"),
    [(1, 1, 8, {15, 22}), (2, 8, 1, {15, 22}), (3, 15, 1, {8, 22})],
)
def test_each_official_split_tests_its_groups_and_val_takes_the_last_train_groups(
    split_id: int, test_group: int, train_group: int, val_groups: set[int]
) -> None:
    items = plan(OFFICIAL, split_id=split_id).items
    groups = {
        split: {group_of(item.key) for item in items if item.split == split} for split in ("train", "val", "test")
    }
    assert groups == {"train": {train_group}, "val": val_groups, "test": {test_group}}
    assert len([item for item in items if item.split == "test"]) == 3  # one clip per class


def test_val_groups_zero_keeps_train_whole_and_a_class_always_keeps_one_train_group() -> None:
    assert {item.split for item in plan(OFFICIAL, val_groups=0).items} == {"train", "test"}
    greedy = plan(OFFICIAL, val_groups=10).items
    assert {group_of(item.key) for item in greedy if item.split == "train"} == {8}
    assert {group_of(item.key) for item in greedy if item.split == "val"} == {15, 22}


def test_classes_picks_a_subset_and_the_prompt_lists_only_it() -> None:
    result = plan(OFFICIAL, classes=("HandstandPushups", "Basketball"))
    assert {item.payload["label"] for item in result.items} == {"Basketball", "HandstandPushups"}
    assert result.items[0].payload["user"].endswith("classes: Basketball, HandstandPushups.")
    assert result.skipped == {"class-not-selected": 4}
    with pytest.raises(UsageError, match="--classes: Juggling not found"):
        plan(OFFICIAL, classes=("Juggling",))


def test_official_list_problems_are_rejected_or_counted(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(OFFICIAL, raw)
    (raw / "UCF-101" / "Basketball" / "v_Basketball_g22_c01.avi").unlink()  # listed in trainlist01
    shutil.copy(
        raw / "UCF-101" / "Basketball" / "v_Basketball_g08_c01.avi",
        raw / "UCF-101" / "Basketball" / "v_Basketball_g23_c01.avi",
    )
    with (raw / "ucfTrainTestlist" / "testlist01.txt").open("ab") as lists:
        lists.write(b"Juggling/v_Juggling_g01_c01.avi\r\n")
    (raw / "UCF-101" / "README.txt").write_text("UCF-101")

    result = plan(raw)

    assert dict(result.rejected) == {
        "UCF-101/Basketball/v_Basketball_g22_c01.avi": "listed in ucfTrainTestlist/trainlist01.txt line 6, but the file is missing",
        "UCF-101/Juggling/v_Juggling_g01_c01.avi": "ucfTrainTestlist/testlist01.txt line 4 names no class of classInd.txt",
    }
    assert result.skipped == {"not-in-split-lists": 1}  # the g23 copy is in no list
    assert result.ignored == {"unused": 1}


def test_layout_mistakes_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(InputLayoutError, match=r"expected UCF-101 in the official layout .* holds 21 .avi files"):
        plan(FIXTURES)
    shutil.copytree(SUBSET, tmp_path / "UCF101_subset")
    with pytest.raises(InputLayoutError, match=r"did you mean --input .*UCF101_subset\?"):
        plan(tmp_path)
    shutil.copytree(OFFICIAL / "UCF-101", tmp_path / "official" / "UCF-101")
    with pytest.raises(InputLayoutError, match="has no ucfTrainTestlist/ folder"):
        plan(tmp_path / "official")
    with pytest.raises(UsageError, match="--val-groups applies to the official layout"):
        plan(SUBSET, val_groups=3)


def test_without_pyav_the_source_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *args: None if name == "av" else real_find_spec(name, *args)
    )
    with pytest.raises(UsageError, match=r"pip install 'phi3v-data\[video\]'"):
        plan(SUBSET)


def test_broken_clips_are_rejected_and_truncated_ones_keep_the_frames_that_decode(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(SUBSET, raw)
    for name in ("not_a_video.avi", "truncated_no_index.mp4", "truncated_h264.mp4"):
        shutil.copy(FIXTURES / "broken" / name, raw / "train" / "Basketball" / name)

    report = convert(raw, tmp_path / "out")

    reasons = {rejection.input: rejection.reason for rejection in report.rejected}
    assert sorted(reasons) == ["train/Basketball/not_a_video.avi", "train/Basketball/truncated_no_index.mp4"]
    assert all("cannot be opened as a video" in reason for reason in reasons.values())
    truncated = [
        record for record in records(tmp_path / "out") if "truncated_h264" in record["conversations"][0]["images"][0]
    ]
    assert len(truncated) == 1 and len(truncated[0]["conversations"][0]["images"]) == 8
    for record in records(tmp_path / "out"):  # no record points at a frame that was not written
        assert all((tmp_path / "out" / "images" / path).is_file() for path in record["conversations"][0]["images"])
    assert not list((tmp_path / "out" / "images" / "train" / "Basketball").glob("not_a_video*"))


def test_a_clip_shorter_than_the_frames_asked_is_padded_with_repeated_frames(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "test" / "Basketball"
    raw.mkdir(parents=True)
    shutil.copy(OFFICIAL / "UCF-101" / "Basketball" / "v_Basketball_g22_c01.avi", raw)  # 23 frames decode

    convert(tmp_path / "raw", tmp_path / "out", num_frames=30)

    (record,) = records(tmp_path / "out")
    images = record["conversations"][0]["images"]
    assert images == [f"test/Basketball/v_Basketball_g22_c01.{k}.jpg" for k in range(30)]
    indices = np.arange(0, 23, 23 / 30).astype(int).tolist()  # the cookbook's formula repeats some
    assert len(set(indices)) == 23
    frames = [(tmp_path / "out" / "images" / path).read_bytes() for path in images]
    for k in range(30):  # equal frames exactly where the indices repeat (every source frame differs)
        assert [frames[j] == frames[k] for j in range(30)] == [indices[j] == indices[k] for j in range(30)]


def full_sequential_decode(path: Path) -> list[Image.Image]:
    """Every frame, in decode output order: the definition the sampler is held to."""
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def test_written_frames_are_the_full_decode_at_the_cookbook_indices(tmp_path: Path) -> None:
    convert(SUBSET, tmp_path / "out", max_side=None)
    for clip in sorted(SUBSET.rglob("*.*")):
        relative = clip.relative_to(SUBSET)
        frames = full_sequential_decode(clip)
        indices = np.arange(0, len(frames), len(frames) / 8).astype(int)[:8]
        prefix = tmp_path / "out" / "images" / relative.with_suffix("")
        for k, index in enumerate(indices):
            written = Path(f"{prefix}.{k}.jpg").read_bytes()
            assert written == encode_jpeg(frames[index]), f"{relative} frame {k} is not decoded frame {index}"
    assert len(list((tmp_path / "out" / "images").rglob("*.jpg"))) == 8 * 8


def test_max_side_shrinks_frames_and_keeps_the_aspect(tmp_path: Path) -> None:
    convert(SUBSET, tmp_path / "out", max_side=32, classes=("Basketball",))
    sizes = {Image.open(path).size for path in (tmp_path / "out" / "images").rglob("*.jpg")}
    assert sizes == {(32, 24)}  # from 64x48
