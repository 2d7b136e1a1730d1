"""The docvqa source: plan and per-page conversion on the fixture tree, other layouts, wrong layouts, end to end."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from phi3v_data.cli import main
from phi3v_data.converters.docvqa import DocVQAConverter, DocVQAOptions
from phi3v_data.converters.runner import run_conversion
from phi3v_data.errors import InputLayoutError
from image_source_golden import FIXTURES, assert_matches_golden, convert_all, records_of

RAW = FIXTURES / "docvqa"
CONVERTER = DocVQAConverter()


def test_plan_has_one_item_per_page_and_sets_broken_rows_aside() -> None:
    plan = CONVERTER.plan(RAW, DocVQAOptions())

    assert [(item.split, item.index, item.key) for item in plan.items] == [
        ("train", 0, "train/documents/ffbf0023_4.png"),
        ("train", 1, "train/documents/gxbw0226_2.png"),
        ("train", 2, "train/documents/nkbl0226_1.png"),
        ("val", 0, "val/documents/pybv0228_81.png"),
        ("val", 1, "val/documents/xnbl0037_1.png"),
    ]
    assert [len(item.payload["questions"]) for item in plan.items] == [2, 1, 1, 2, 1]
    assert plan.rejected == [
        ("train/train_v1.0.json data[5]", "questionId 1006: answers holds no non-blank answer"),
        ("train/train_v1.0.json data[6]", "questionId 1001 is already used by data[0]"),
        (
            "train/documents/jzhd0227_85.png",
            "no such file (looked in train/, the input folder, test/, val/, and for a single file of that name anywhere); "
            "named by train/train_v1.0.json",
        ),
    ]
    # test_v1.0.json has no answers; README.md, the OCR file and the test page are not used.
    assert plan.skipped == {"unlabelled": 2}
    assert plan.ignored == {"hidden": 1, "unused": 3}


def test_one_record_per_question_keeps_every_answer_in_meta() -> None:
    _, results = convert_all(CONVERTER, RAW, DocVQAOptions())
    records = records_of(results)

    assert sorted(records) == ["train-1001", "train-1002", "train-1003", "val-2001", "val-2002", "val-2003"]
    assert records["train-1002"] == {
        "id": "train-1002",
        "source": "docvqa",
        "conversations": [
            {"images": ["train/ffbf0023_4.png"], "user": "Who is the sender?", "assistant": "T. F. Riehl"}
        ],
        "meta": {
            "question_id": 1002,
            "answers": ["T. F. Riehl", "T.F. Riehl"],
            "doc_id": 11,
            "ucsf_document_id": "ffbf0023",
            "ucsf_document_page_no": "4",
        },
    }
    assert records["train-1003"]["conversations"][0]["assistant"] == "€ 12,50"
    assert records["val-2002"]["meta"]["question_types"] == ["handwritten", "form"]


def test_pages_are_copied_byte_for_byte_in_their_own_mode() -> None:
    _, results = convert_all(CONVERTER, RAW, DocVQAOptions())

    written = {image.relative_path: image.data for result in results.values() for image in result.images}
    assert sorted(written) == [
        "train/ffbf0023_4.png",
        "train/gxbw0226_2.png",
        "val/pybv0228_81.png",
        "val/xnbl0037_1.png",
    ]
    assert written["train/ffbf0023_4.png"] == (RAW / "train/documents/ffbf0023_4.png").read_bytes()
    modes = {path: Image.open(io.BytesIO(data)).mode for path, data in written.items()}
    assert modes["train/ffbf0023_4.png"] == "L"
    assert modes["train/gxbw0226_2.png"] == "RGB"


def test_a_truncated_page_rejects_its_item() -> None:
    _, results = convert_all(CONVERTER, RAW, DocVQAOptions())

    rejected = results["train/documents/nkbl0226_1.png"]
    assert rejected.records == [] and rejected.images == []
    assert rejected.rejection is not None and "image-truncated" in rejected.rejection


def test_group_by_image_writes_one_multi_turn_record_per_page() -> None:
    _, results = convert_all(CONVERTER, RAW, DocVQAOptions(group_by_image=True))
    records = records_of(results)

    assert sorted(records) == ["train-ffbf0023_4", "train-gxbw0226_2", "val-pybv0228_81", "val-xnbl0037_1"]
    page = records["val-pybv0228_81"]
    assert page["conversations"] == [
        {"images": ["val/pybv0228_81.png"], "user": "What is the heading?", "assistant": "MEMO"},
        {"images": [], "user": "What is the page number?", "assistant": "81"},
    ]
    assert page["meta"] == {
        "doc_id": 21,
        "ucsf_document_id": "pybv0228",
        "ucsf_document_page_no": "81",
        "questions": [
            {"question_id": 2001, "answers": ["MEMO"], "question_types": ["layout"]},
            {"question_id": 2003, "answers": ["81", "page 81"], "question_types": ["others"]},
        ],
    }


def write_annotation(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset_name": "docvqa", "dataset_split": "train", "data": rows}))


def write_page(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (32, 40), 255).save(path)


def row(question_id: int, image: str = "documents/abcd0001_1.png", **fields) -> dict:
    return {"questionId": question_id, "question": "What is it?", "image": image, "answers": ["it"], **fields}


def test_rrc_download_layout_finds_pages_in_a_sibling_folder_and_prefers_question_types(tmp_path: Path) -> None:
    write_annotation(tmp_path / "spdocvqa_qas/train_v1.0.json", [row(1)])
    write_annotation(tmp_path / "spdocvqa_qas/train_v1.0_withQT.json", [row(1, question_types=["figure/diagram"])])
    write_page(tmp_path / "spdocvqa_images/documents/abcd0001_1.png")

    plan, results = convert_all(CONVERTER, tmp_path, DocVQAOptions())

    assert [item.key for item in plan.items] == ["spdocvqa_images/documents/abcd0001_1.png"]
    assert records_of(results)["train-1"]["meta"]["question_types"] == ["figure/diagram"]
    assert plan.ignored == {"unused": 1}  # the file without question types


def test_pages_in_a_flat_folder_are_found_by_their_unique_name(tmp_path: Path) -> None:
    write_annotation(tmp_path / "val_v1.0.json", [row(1), row(2, "documents/abcd0002_1.png")])
    write_page(tmp_path / "images/abcd0001_1.png")
    write_page(tmp_path / "images/abcd0002_1.png")
    write_page(tmp_path / "copy/abcd0002_1.png")  # two files of that name: which one is meant is unknown

    plan, _ = convert_all(CONVERTER, tmp_path, DocVQAOptions())

    assert [item.key for item in plan.items] == ["images/abcd0001_1.png"]
    assert [reason for _, reason in plan.rejected] == [
        "no such file (looked in the input folder, copy/, images/, and for a single file of that name anywhere); "
        "named by val_v1.0.json"
    ]


def test_a_symlinked_documents_folder_is_followed_and_a_symlink_loop_is_harmless(tmp_path: Path) -> None:
    raw, elsewhere = tmp_path / "raw", tmp_path / "big-disk"
    write_annotation(raw / "train/train_v1.0.json", [row(1)])
    write_page(elsewhere / "documents/abcd0001_1.png")
    (raw / "train/documents").symlink_to(elsewhere / "documents")
    (elsewhere / "documents/loop").symlink_to(elsewhere)

    plan, results = convert_all(CONVERTER, raw, DocVQAOptions())

    assert [item.key for item in plan.items] == ["train/documents/abcd0001_1.png"]
    assert results["train/documents/abcd0001_1.png"].images[0].relative_path == "train/abcd0001_1.png"


def test_a_page_name_used_twice_is_rejected_instead_of_overwritten(tmp_path: Path) -> None:
    write_annotation(tmp_path / "train_v1.0.json", [row(1, "documents/a_1.png"), row(2, "scans/a_1.png")])
    write_page(tmp_path / "documents/a_1.png")
    write_page(tmp_path / "scans/a_1.png")

    plan = CONVERTER.plan(tmp_path, DocVQAOptions())

    assert [item.key for item in plan.items] == ["documents/a_1.png"]
    assert plan.rejected == [
        ("scans/a_1.png", "a page named a_1 is already used by train_v1.0.json; page names must be unique")
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"clips/v_Walk_g01_c01.avi": b"RIFF"},
            "is not a DocVQA folder: expected train_v1.0.json, val_v1.0.json or test_v1.0.json (at the top or one "
            "folder down, as in train/train_v1.0.json) with the page images in a documents/ folder next to it, but "
            "it holds 1 .avi file",
        ),
        ({"train_v1.0.json": b'{"data": [1,'}, "train_v1.0.json is not valid JSON (Expecting value at line 1"),
        ({"val_v1.0.json": b'{"data": {}}'}, 'val_v1.0.json has no "data" list'),
        (
            {"train_v1.0.json": json.dumps({"data": [row(1)]}).encode()},
            "none of the 1 page images that train_v1.0.json names (e.g. documents/abcd0001_1.png) is in the input "
            "folder: expected them in a documents/ folder next to train_v1.0.json",
        ),
    ],
    ids=["folder-of-videos", "invalid-json", "no-data-list", "no-page-images"],
)
def test_a_folder_that_is_not_docvqa_is_a_layout_error(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    for relative, data in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)

    with pytest.raises(InputLayoutError) as raised:
        CONVERTER.plan(tmp_path, DocVQAOptions())
    assert message in str(raised.value)


def test_cli_writes_the_golden_dataset_and_names_each_rejection(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["convert", "docvqa", "--input", str(RAW), "--out", str(tmp_path / "out")])

    assert result.exit_code == 1, result.output
    assert "rejected train/documents/jzhd0227_85.png: no such file" in result.stderr
    assert "rejected train/documents/nkbl0226_1.png: the file ends before its PNG IEND chunk" in result.stderr
    assert_matches_golden("docvqa", tmp_path / "out")


def test_conversion_is_deterministic_across_worker_counts(tmp_path: Path) -> None:
    for workers in (1, 2):
        run_conversion(CONVERTER, RAW, tmp_path / str(workers), DocVQAOptions(), workers=workers)
        assert_matches_golden("docvqa", tmp_path / str(workers))


def test_cli_refuses_a_folder_of_videos_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(main, ["convert", "docvqa", "--input", str(FIXTURES / "ucf101"), "--out", str(out)])

    assert result.exit_code == 2
    assert "is not a DocVQA folder: expected train_v1.0.json" in result.stderr
    assert not out.exists()


def test_cli_group_by_image_writes_a_valid_multi_turn_dataset(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main, ["convert", "docvqa", "--input", str(RAW), "--out", str(out), "--group-by-image", "--workers", "1"]
    )

    assert result.exit_code == 1, result.output  # the fixture's broken rows and pages
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["converter"]["options"] == {"group_by_image": True}
    assert {split: entry["records"] for split, entry in manifest["splits"].items()} == {"train": 2, "val": 2}
    assert manifest["validation"]["errors"] == 0
    first = json.loads((out / "docvqa_train.jsonl").read_text().splitlines()[0])
    assert [len(turn["images"]) for turn in first["conversations"]] == [1, 0]
