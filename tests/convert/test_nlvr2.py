"""The nlvr2 source: image pairs, JPEG bytes in .png files, other layouts, wrong layouts, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from pydantic import ValidationError

from phi3v_data.cli import main
from phi3v_data.converters.nlvr2 import NLVR2Converter, NLVR2Options
from phi3v_data.converters.runner import run_conversion
from phi3v_data.errors import InputLayoutError
from phi3v_data.images import ImageInfo, extension_mismatch, probe_image
from image_source_golden import FIXTURES, assert_matches_golden, convert_all, records_of

RAW = FIXTURES / "nlvr2"
CONVERTER = NLVR2Converter()


def test_plan_has_one_item_per_image_pair_and_sets_broken_lines_aside() -> None:
    plan = CONVERTER.plan(RAW, NLVR2Options())

    assert [(item.split, item.index, item.key) for item in plan.items] == [
        ("train", 0, "train-10171-0"),
        ("train", 1, "train-204-1"),
        ("val", 0, "dev-850-0"),
        ("val", 1, "dev-851-3"),
        ("test", 0, "test1-0-1"),
    ]
    assert [sentence["identifier"] for sentence in plan.items[0].payload["sentences"]] == [
        "train-10171-0-0",
        "train-10171-0-1",
    ]
    assert plan.rejected == [
        ("train.json:5", 'train-441-3-0: label is \'maybe\'; expected "True" or "False"'),
        ("images/train/5/train-330-2-img1.png", "no such file; needed by train-330-2-0 in train.json"),
    ]
    assert plan.skipped == {}
    # README.md, the left image of the pair missing its right one, the pair of the bad label.
    assert plan.ignored == {"hidden": 1, "unused": 4}


def test_a_sentence_becomes_a_true_false_question_about_the_left_then_right_image() -> None:
    _, results = convert_all(CONVERTER, RAW, NLVR2Options())
    records = records_of(results)

    assert sorted(records) == [
        "dev-850-0-0",
        "dev-850-0-1",
        "test1-0-1-0",
        "train-10171-0-0",
        "train-10171-0-1",
        "train-204-1-0",
    ]
    assert records["dev-850-0-0"] == {
        "id": "dev-850-0-0",
        "source": "nlvr2",
        "conversations": [
            {
                "images": ["val/dev-850-0-img0.png", "val/dev-850-0-img1.png"],
                "user": 'Is this statement true or false about the two images? "The right image contains a café sign." '
                "Answer True or False.",
                "assistant": "True",
            }
        ],
    }
    assert records["train-10171-0-1"]["conversations"][0]["images"] == [
        "train/71/train-10171-0-img0.png",
        "train/71/train-10171-0-img1.png",
    ]
    assert records["test1-0-1-0"]["conversations"][0]["assistant"] == "False"


def test_a_pair_is_written_once_for_all_its_sentences() -> None:
    _, results = convert_all(CONVERTER, RAW, NLVR2Options())

    pair = results["train-10171-0"]
    assert [image.relative_path for image in pair.images] == [
        "train/71/train-10171-0-img0.png",
        "train/71/train-10171-0-img1.png",
    ]
    assert len(pair.records) == 2


def test_jpeg_bytes_in_a_png_file_are_copied_unchanged_under_a_jpg_name(tmp_path: Path) -> None:
    source = RAW / "images/train/5/train-204-1-img1.png"
    info = probe_image(source)
    assert isinstance(info, ImageInfo) and info.format == "JPEG"  # the fixture reproduces the README's quirk

    _, results = convert_all(CONVERTER, RAW, NLVR2Options())
    left, right = results["train-204-1"].images

    assert (left.relative_path, right.relative_path) == ("train/5/train-204-1-img0.png", "train/5/train-204-1-img1.jpg")
    assert right.data == source.read_bytes()
    written = tmp_path / "img1.jpg"
    written.write_bytes(right.data)
    written_info = probe_image(written)
    assert isinstance(written_info, ImageInfo) and extension_mismatch(written, written_info) is None


def test_a_truncated_image_rejects_its_pair_naming_the_file() -> None:
    _, results = convert_all(CONVERTER, RAW, NLVR2Options())

    rejection = results["dev-851-3"].rejection
    assert rejection is not None
    assert rejection.startswith("dev/dev-851-3-img0.png: ") and "image-truncated" in rejection


def test_a_custom_prompt_places_the_sentence_and_needs_its_slot() -> None:
    _, results = convert_all(CONVERTER, RAW, NLVR2Options(prompt="{sentence} True or False?"))
    assert records_of(results)["test1-0-1-0"]["conversations"][0]["user"] == "There are three birds. True or False?"

    with pytest.raises(ValidationError, match=r"the prompt must contain \{sentence\}"):
        NLVR2Options(prompt="True or False?")


def write_pair(folder: Path, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for side in (0, 1):
        Image.new("RGB", (8, 8), (side * 200, 0, 0)).save(folder / f"{stem}-img{side}.png")


def write_lines(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_repository_layout_with_annotations_in_data_and_images_under_images(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "data/dev.json",
        [
            {"identifier": "dev-1-0-0", "sentence": "Two dogs.", "label": "true"},
            {"identifier": "dev-1-0-1", "sentence": "No dogs."},  # no label: skipped
            {"identifier": "train-2-0-0", "sentence": "A cat.", "label": "False"},  # not a dev identifier
        ],
    )
    write_lines(tmp_path / "data/test2.json", [{"identifier": "test2-5-3-1", "sentence": "A bird.", "label": "False"}])
    write_pair(tmp_path / "images/dev", "dev-1-0")
    write_pair(tmp_path / "images/test2", "test2-5-3")

    plan, results = convert_all(CONVERTER, tmp_path, NLVR2Options())

    assert [(item.split, item.key) for item in plan.items] == [("val", "dev-1-0"), ("test", "test2-5-3")]
    assert records_of(results)["dev-1-0-0"]["conversations"][0]["assistant"] == "True"
    assert plan.skipped == {"unlabelled": 1}
    assert plan.rejected == [
        ("data/dev.json:3", "identifier is 'train-2-0-0'; expected dev-<set>-<pair>-<sentence>, such as dev-10171-0-0")
    ]


def test_a_train_image_outside_its_directory_is_found_in_the_flat_folder(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "train.json", [{"identifier": "train-3-1-0", "directory": 9, "sentence": "A cup.", "label": "True"}]
    )
    write_pair(tmp_path / "images/train", "train-3-1")

    plan, results = convert_all(CONVERTER, tmp_path, NLVR2Options())

    assert [image.relative_path for image in results["train-3-1"].images] == [
        "train/train-3-1-img0.png",
        "train/train-3-1-img1.png",
    ]
    assert plan.rejected == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"img/a.png": b"png"},
            "is not an NLVR2 folder: expected train.json, dev.json or test1.json (at the top or in data/) with the "
            "images in images/train/, dev/ and test1/, but it holds 1 .png file",
        ),
        (
            {"dev.json": b'[{"identifier": "dev-1-0-0"}]'},
            "dev.json is one JSON array: expected the original NLVR2 file from github.com/lil-lab/nlvr",
        ),
        (
            {"dev.json": b'{"identifier": "dev-1-0-0", "sentence": "A dog.", "label": "True"}\n'},
            "none of the images that dev.json names (e.g. dev-1-0-img0.png) is in images/dev/ or dev/",
        ),
    ],
    ids=["no-annotations", "json-array", "no-images"],
)
def test_a_folder_that_is_not_nlvr2_is_a_layout_error(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    for relative, data in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)

    with pytest.raises(InputLayoutError) as raised:
        CONVERTER.plan(tmp_path, NLVR2Options())
    assert message in str(raised.value)


def test_cli_writes_the_golden_dataset_and_names_each_rejection(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(main, ["convert", "nlvr2", "--input", str(RAW), "--out", str(out)])

    assert result.exit_code == 1, result.output
    assert "rejected images/train/5/train-330-2-img1.png: no such file; needed by train-330-2-0" in result.stderr
    assert "rejected dev-851-3: dev/dev-851-3-img0.png: the file ends before its PNG IEND chunk" in result.stderr
    assert_matches_golden("nlvr2", out)


def test_converting_again_over_a_previous_output_gives_the_same_bytes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_conversion(CONVERTER, RAW, out, NLVR2Options(), workers=2)
    run_conversion(CONVERTER, RAW, out, NLVR2Options(), workers=1, mode="overwrite")

    assert_matches_golden("nlvr2", out)
