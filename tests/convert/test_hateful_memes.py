"""The hateful-memes source: plan and conversion on the fixture tree, variants, prompts, wrong layouts, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from pydantic import ValidationError

from phi3v_data.cli import main
from phi3v_data.converters.hateful_memes import HatefulMemesConverter, HatefulMemesOptions
from phi3v_data.errors import InputLayoutError
from image_source_golden import FIXTURES, assert_matches_golden, convert_all, records_of

RAW = FIXTURES / "hateful-memes"
CONVERTER = HatefulMemesConverter()


def test_plan_reads_every_file_and_sets_broken_lines_aside() -> None:
    plan = CONVERTER.plan(RAW, HatefulMemesOptions())

    assert [(item.split, item.index, item.key) for item in plan.items] == [
        ("train", 0, "img/01235.png"),
        ("train", 1, "img/42953.png"),
        ("train", 2, "img/31570.png"),
        ("val", 0, "img/08291.png"),
        ("val", 1, "img/27635.png"),
        ("val", 2, "img/46971.png"),
        ("test", 0, "img/59160.png"),
    ]
    assert plan.rejected == [
        ("train.jsonl:5", "id 16395: label is 2; expected 0 (not hateful) or 1 (hateful)"),
        ("train.jsonl:6", "not valid JSON: Unterminated string starting at (column 59)"),
        ("img/50000.png", "no such file; named by train.jsonl:4"),
        ("dev_unseen.jsonl:3", "id 27635 is also at dev_seen.jsonl:2 with a different label; that one is kept"),
    ]
    # 8291 is in dev_seen and dev_unseen; test_unseen has no labels.
    assert plan.skipped == {"duplicate": 1, "unlabelled": 1}
    # README.md, LICENSE.txt, and the images of the bad-label and unlabelled lines.
    assert plan.ignored == {"hidden": 1, "unused": 4}


def test_a_meme_becomes_a_yes_no_question_quoting_its_text_intact() -> None:
    _, results = convert_all(CONVERTER, RAW, HatefulMemesOptions())
    records = records_of(results)

    assert sorted(records) == ["test-59160", "train-1235", "train-42953", "val-27635", "val-46971", "val-8291"]
    assert records["train-42953"] == {
        "id": "train-42953",
        "source": "hateful-memes",
        "conversations": [
            {
                "images": ["train/42953.png"],
                "user": 'Is this meme hateful? Its text reads: "naïve café «déjà vu» — 日本語 ✓ 😀". Answer yes or no.',
                "assistant": "yes",
            }
        ],
    }
    assert records["train-1235"]["conversations"][0]["assistant"] == "no"
    # The id is not zero-padded; the image keeps the padded file name from "img".
    assert records["val-8291"]["conversations"][0]["images"] == ["val/08291.png"]
    assert results["img/08291.png"].images[0].data == (RAW / "img/08291.png").read_bytes()


def test_a_truncated_meme_image_rejects_its_item() -> None:
    _, results = convert_all(CONVERTER, RAW, HatefulMemesOptions())

    rejection = results["img/31570.png"].rejection
    assert rejection is not None and "image-truncated" in rejection


@pytest.mark.parametrize(
    ("variant", "val_ids", "test_ids"),
    [
        ("seen", ["val-8291", "val-27635"], ["test-59160"]),
        ("unseen", ["val-8291", "val-46971", "val-27635"], []),
    ],
)
def test_variant_picks_the_dev_and_test_files(variant: str, val_ids: list[str], test_ids: list[str]) -> None:
    plan, results = convert_all(CONVERTER, RAW, HatefulMemesOptions(variant=variant))
    by_split: dict[str, list[str]] = {"val": [], "test": []}
    for item in plan.items:
        if item.split != "train":
            by_split[item.split] += [record["id"] for record in results[item.key].records]

    assert by_split == {"val": val_ids, "test": test_ids}
    assert "duplicate" not in plan.skipped  # each variant alone reads 8291 once
    assert not any(source.startswith("dev_unseen") for source, _ in plan.rejected)


def test_a_custom_prompt_places_the_text() -> None:
    options = HatefulMemesOptions(prompt="Meme text: {text}\nHateful?")
    _, results = convert_all(CONVERTER, RAW, options)

    assert records_of(results)["val-27635"]["conversations"][0]["user"] == "Meme text: monday again\nHateful?"


def test_a_prompt_without_the_text_slot_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"the prompt must contain \{text\}"):
        HatefulMemesOptions(prompt="Is this meme hateful?")


def test_one_image_named_by_two_memes_is_used_once(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "img/00001.png")
    lines = [
        {"id": 1, "img": "img/00001.png", "label": 0, "text": "a"},
        {"id": 2, "img": "img/00001.png", "label": 1, "text": "b"},
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    plan = CONVERTER.plan(tmp_path, HatefulMemesOptions())

    assert [item.payload["id"] for item in plan.items] == ["1"]
    assert plan.rejected == [
        ("train.jsonl:2", "an image named 00001 is already used by train.jsonl:1; image names must be unique")
    ]


def test_lines_that_are_not_meme_objects_are_rejected_by_line_number(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "img/00001.png")
    lines = [
        b'{"id": 1, "img": "img/00001.png", "label": 1, "text": "fine"}',
        b'["id", 2]',
        b'{"id": 3, "img": "img/00003.png", "label": 0, "text": "caf\xe9"}',
        b'{"id": "three", "img": "img/00003.png", "label": 0, "text": "x"}',
        b'{"id": 4, "img": "../img/00004.png", "label": 0, "text": "x"}',
        b'{"id": 5, "img": "img/00005.png", "label": "1", "text": "x"}',
    ]
    (tmp_path / "train.jsonl").write_bytes(b"\r\n".join(lines) + b"\r\n")

    plan = CONVERTER.plan(tmp_path, HatefulMemesOptions())

    assert [item.key for item in plan.items] == ["img/00001.png"]
    assert plan.rejected == [
        ("train.jsonl:2", "a JSON array, not an object"),
        ("train.jsonl:3", "the line is not valid UTF-8"),
        ("train.jsonl:4", "id is 'three'; expected a number such as 1235"),
        ("train.jsonl:5", "id 4: img '../img/00004.png' has a '..' segment; paths must stay inside the images root"),
        ("train.jsonl:6", "id 5: label is '1'; expected 0 (not hateful) or 1 (hateful)"),
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"img/00001.png": b"png"},
            "is not a Hateful Memes folder: expected train.jsonl, dev_seen.jsonl, dev_unseen.jsonl, test_seen.jsonl "
            "or test_unseen.jsonl (or dev.jsonl, test.jsonl) next to an img/ folder of memes, but it holds 1 .png file",
        ),
        (
            {"train.jsonl": b'{"id": 1, "img": "img/00001.png", "label": 0, "text": "a"}\n'},
            "none of the 1 images that train.jsonl names (e.g. img/00001.png) exists: expected them in an img/ folder",
        ),
    ],
    ids=["no-annotations", "no-images"],
)
def test_a_folder_that_is_not_hateful_memes_is_a_layout_error(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    for relative, data in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)

    with pytest.raises(InputLayoutError) as raised:
        CONVERTER.plan(tmp_path, HatefulMemesOptions())
    assert message in str(raised.value)


def test_cli_writes_the_golden_dataset_and_names_each_rejection(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main, ["convert", "hateful-memes", "--input", str(RAW), "--out", str(out), "--workers", "2"]
    )

    assert result.exit_code == 1, result.output
    assert "rejected dev_unseen.jsonl:3: id 27635 is also at dev_seen.jsonl:2" in result.stderr
    assert "rejected img/31570.png: the file ends before its PNG IEND chunk" in result.stderr
    assert_matches_golden("hateful-memes", out)
    # Non-ASCII text is written as UTF-8, not escaped.
    assert "naïve café «déjà vu» — 日本語 ✓ 😀" in (out / "hateful-memes_train.jsonl").read_text(encoding="utf-8")
