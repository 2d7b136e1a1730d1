"""validate(): chunking, workers, cross-record checks, image modes and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import MODEL_DIR, record, write_image, write_jsonl

from phi3v_data import validate
from phi3v_data.errors import FileNotFoundPhi3vDataError, InputLayoutError, Phi3vDataError, UsageError
from phi3v_data.hd_crop import image_token_count
from phi3v_data.validation import image_checks, run


def located(report) -> list[tuple[str, int | None, str]]:  # type: ignore[no-untyped-def]
    return [(Path(problem.file).name, problem.line, problem.code) for problem in report.problems]


def mixed_file(path: Path) -> Path:
    """Forty lines with problems at known places, blank lines in the middle and at the end."""
    lines: list[dict | bytes] = [record(f"r{index}") for index in range(40)]
    lines[3] = b"{not json"
    lines[10] = b""
    lines[17] = record("r1")  # duplicate of line 2
    lines[25] = b"\xff\xfe"
    lines[33] = {"id": "x", "source": "s", "conversations": []}
    return write_jsonl(path, *lines, b"", b"   ")


EXPECTED_MIXED = [
    ("d.jsonl", 4, "line-invalid-json"),
    ("d.jsonl", 11, "line-blank"),
    ("d.jsonl", 18, "id-duplicate"),
    ("d.jsonl", 26, "line-not-utf8"),
    ("d.jsonl", 34, "schema-violation"),
]


def test_problems_carry_physical_line_numbers(tmp_path: Path) -> None:
    report = validate([mixed_file(tmp_path / "d.jsonl")], images="none", workers=1)
    assert located(report) == EXPECTED_MIXED
    assert report.records == 39 and report.errors == 4 and report.warnings == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_small_chunks_and_processes_give_the_same_report(tmp_path: Path, monkeypatch, workers: int) -> None:  # type: ignore[no-untyped-def]
    path = mixed_file(tmp_path / "d.jsonl")
    whole = validate([path], images="none", workers=1)
    monkeypatch.setattr(run, "_LINE_CHUNK_BYTES", 150)  # a chunk or two per line
    chunked = validate([path], images="none", workers=workers)
    assert chunked == whole


def test_a_multi_megabyte_line_is_one_record(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(run, "_LINE_CHUNK_BYTES", 1 << 16)
    huge = record("huge", user="word " * 1_000_000)
    path = write_jsonl(tmp_path / "d.jsonl", record("a"), huge, {"id": "b"})
    report = validate([path], images="none", workers=1)
    assert report.records == 3
    assert {(problem.line, problem.code) for problem in report.problems} == {(3, "schema-violation")}


def test_an_empty_file_and_a_file_of_blank_lines_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = write_jsonl(tmp_path / "blank.jsonl", b"", b"  ", b"\r")
    report = validate([empty, blank], images="none", workers=1)
    assert located(report) == [("empty.jsonl", None, "file-empty"), ("blank.jsonl", None, "file-empty")]


def test_an_empty_file_beside_files_with_images_is_reported_not_a_crash(tmp_path: Path) -> None:
    # Leakage is tracked across the files of a dataset; an empty one has no image keys at all.
    write_jsonl(tmp_path / "train.jsonl", record("a", "x.jpg"))
    (tmp_path / "val.jsonl").write_bytes(b"")
    report = validate([tmp_path], images="none", workers=1)
    assert located(report) == [("val.jsonl", None, "file-empty")]


def test_a_nul_in_an_image_path_is_reported_in_every_mode(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "x.jpg")
    write_jsonl(tmp_path / "train.jsonl", record("a", "x.jpg\x00y"))
    for mode in ("none", "exists", "header", "decode"):
        report = validate([tmp_path], images=mode, workers=1)
        assert located(report) == [("train.jsonl", 1, "image-path-nul")], mode


def test_ids_are_unique_across_the_files_of_a_dataset_but_not_across_datasets(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "one" / "train.jsonl", record("a"), record("b"))
    write_jsonl(tmp_path / "one" / "val.jsonl", record("b"))
    write_jsonl(tmp_path / "two" / "train.jsonl", record("a"))
    report = validate([tmp_path / "one", tmp_path / "two"], images="none", workers=1)
    assert located(report) == [("val.jsonl", 1, "id-duplicate")]
    assert "one/train.jsonl:2" in report.problems[0].message


def test_leakage_names_the_image_and_the_earlier_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", record("t1", "a.jpg"), record("t2", "shared/x.jpg"))
    write_jsonl(tmp_path / "test.jsonl", record("v1", "b.jpg"), record("v2", "shared//x.jpg", "b.jpg"))
    report = validate([tmp_path], images="none", workers=1)
    assert located(report) == [("train.jsonl", 2, "image-split-leakage")]
    assert "'shared/x.jpg'" in report.problems[0].message and "test.jsonl:2" in report.problems[0].message


def test_each_image_file_is_probed_once_however_many_records_use_it(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_image(tmp_path / "images" / "a.jpg")
    probed: list[str] = []
    real_probe = image_checks.probe_image

    def counting_probe(path, max_pixels):  # type: ignore[no-untyped-def]
        probed.append(str(path))
        return real_probe(path, max_pixels)

    monkeypatch.setattr(image_checks, "probe_image", counting_probe)
    path = write_jsonl(tmp_path / "d.jsonl", *(record(f"r{index}", "a.jpg", "./a.jpg") for index in range(20)))
    assert validate([path], workers=1).ok
    assert len(probed) == 1


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", []),
        ("exists", [("d.jsonl", 2, "image-missing")]),
        ("header", [("d.jsonl", 2, "image-missing"), ("d.jsonl", 3, "image-unreadable")]),
    ],
)
def test_each_images_mode_checks_what_it_says(tmp_path: Path, mode: str, expected: list) -> None:  # type: ignore[type-arg]
    write_image(tmp_path / "images" / "ok.jpg")
    (tmp_path / "images" / "text.jpg").write_text("not an image")
    path = write_jsonl(tmp_path / "d.jsonl", record("a", "ok.jpg"), record("b", "gone.jpg"), record("c", "text.jpg"))
    assert located(validate([path], images=mode, workers=1)) == expected  # type: ignore[arg-type]


def test_images_root_overrides_the_images_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "elsewhere" / "a.jpg")
    path = write_jsonl(tmp_path / "d.jsonl", record("a", "a.jpg"))
    assert not validate([path], workers=1).ok
    assert validate([path], images_root=tmp_path / "elsewhere", workers=1).ok


def test_without_a_model_header_mode_reports_image_token_statistics(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "wide.jpg", (320, 240))
    write_image(tmp_path / "images" / "square.jpg", (50, 50))
    path = write_jsonl(
        tmp_path / "d.jsonl", record("a", "wide.jpg"), record("b", "square.jpg", "wide.jpg"), record("c")
    )
    tokens = validate([path], num_crops=16, workers=1).tokens
    assert tokens is not None and tokens.kind == "image"
    wide, square = image_token_count(320, 240, 16), image_token_count(50, 50, 16)
    assert (tokens.count, tokens.min, tokens.median, tokens.max) == (3, 0, wide, wide + square)
    assert validate([path], images="exists", workers=1).tokens is None


def test_with_a_model_lengths_are_the_prompt_builders_counts(tmp_path: Path) -> None:
    from phi3v_data import PromptBuilder, Record

    write_image(tmp_path / "images" / "a.jpg", (320, 240))
    records = [record("short", "a.jpg"), record("long", "a.jpg", user="many words " * 300), record("text")]
    path = write_jsonl(tmp_path / "d.jsonl", *records, b"[]")
    lengths = tmp_path / "out" / "lengths.jsonl"
    # --images none reads headers anyway when counting tokens: the sizes are needed.
    report = validate(
        [path], images="none", model_dir=MODEL_DIR, num_crops=4, max_length=1000, lengths_file=lengths, workers=1
    )

    builder = PromptBuilder.from_model_dir(MODEL_DIR)
    expected = [
        builder.count_tokens(
            Record.model_validate(value), [image_token_count(320, 240, 4)] * len(value["conversations"][0]["images"])
        )
        for value in records
    ]
    written = [json.loads(line) for line in lengths.read_text().splitlines()]
    assert written == [
        {"file": str(path), "line": line, "id": value["id"], "tokens": tokens}
        for line, value, tokens in zip((1, 2, 3), records, expected)
    ]
    assert report.tokens is not None and report.tokens.kind == "sequence"
    assert (report.tokens.min, report.tokens.max, report.tokens.count) == (min(expected), max(expected), 3)
    assert expected[1] > 1000 >= expected[0]
    assert located(report) == [("d.jsonl", 2, "sequence-too-long"), ("d.jsonl", 4, "line-not-object")]
    assert report.options["images"] == "header"


def test_without_num_crops_lengths_are_counted_at_the_trainers_rule(tmp_path: Path) -> None:
    """One record of one image (a DocVQA page): 16 crops, as phi3v-train uses, not the processor's 4."""
    from phi3v_data import PromptBuilder, Record

    write_image(tmp_path / "images" / "page.jpg", (320, 240))
    single = record("page", "page.jpg")
    path = write_jsonl(tmp_path / "d.jsonl", single)
    builder = PromptBuilder.from_model_dir(MODEL_DIR)
    at = {crops: builder.count_tokens(Record.model_validate(single), [image_token_count(320, 240, crops)]) for crops in (4, 16)}
    limit = (at[4] + at[16]) // 2  # certified at 4 crops, too long at the 16 the trainer uses

    report = validate([path], model_dir=MODEL_DIR, max_length=limit, workers=1)
    assert report.tokens is not None and report.tokens.max == at[16]
    assert (report.options["num_crops"], report.options["num_crops_given"]) == (16, False)
    assert located(report) == [("d.jsonl", 1, "sequence-too-long")]
    given = validate([path], model_dir=MODEL_DIR, num_crops=4, max_length=limit, workers=1)
    assert given.ok and given.tokens is not None and given.tokens.max == at[4]
    assert (given.options["num_crops"], given.options["num_crops_given"]) == (4, True)


def test_one_record_of_several_images_anywhere_makes_the_default_4(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.jpg", (320, 240))
    first = write_jsonl(tmp_path / "a_train.jsonl", *(record(f"s{n}", "a.jpg") for n in range(50)))
    second = write_jsonl(tmp_path / "a_val.jsonl", record("t"), b"{broken", record("frames", "a.jpg", "a.jpg"))
    report = validate([tmp_path], workers=2)
    assert (report.options["num_crops"], report.options["num_crops_given"]) == (4, False)
    assert report.tokens is not None and report.tokens.max == 2 * image_token_count(320, 240, 4)
    assert validate([first], workers=1).options["num_crops"] == 16
    assert validate([second], workers=1).options["num_crops"] == 4


def test_nothing_is_counted_and_no_num_crops_chosen_without_image_sizes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", record("a", "a.jpg", "b.jpg"))
    for mode in ("none", "exists"):
        options = validate([path], images=mode, workers=1).options  # type: ignore[arg-type]
        assert (options["num_crops"], options["num_crops_given"]) == (None, False)


def test_no_lengths_file_is_left_when_validation_fails_midway(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "d.jsonl", record("a"))
    lengths = tmp_path / "lengths.jsonl"

    def broken_merge(self, result):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(run.Merger, "add", broken_merge)
    with pytest.raises(RuntimeError):
        validate([path], model_dir=MODEL_DIR, lengths_file=lengths, workers=1)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"num_crops": 17}, UsageError),
        ({"num_crops": 0}, UsageError),
        ({"max_length": 100}, UsageError),
        ({"images": "pixels"}, UsageError),
        ({"workers": 0}, UsageError),
        ({"model_dir": Path(__file__).parent}, Phi3vDataError),
    ],
)
def test_unusable_arguments_raise_before_any_work(tmp_path: Path, arguments: dict, error: type) -> None:  # type: ignore[type-arg]
    path = write_jsonl(tmp_path / "d.jsonl", record("a"))
    with pytest.raises(error):
        validate([path], **arguments)


def test_missing_paths_and_folders_without_jsonl_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundPhi3vDataError, match="does not exist"):
        validate([tmp_path / "absent.jsonl"])
    with pytest.raises(InputLayoutError, match=r"no \.jsonl file"):
        validate([tmp_path])


def test_the_report_is_plain_json_and_strict_counts_warnings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", record("a", extra_field=1))
    report = validate([path], images="none", workers=1)
    document = json.loads(json.dumps(report.to_dict()))
    assert {key: document[key] for key in ("ok", "records", "errors", "warnings")} == {
        "ok": True, "records": 1, "errors": 0, "warnings": 1,
    }  # fmt: skip
    assert document["problems"] == [
        {"file": str(path), "line": 1, "id": "a", "code": "field-unknown", "severity": "warning",
         "message": report.problems[0].message},
    ]  # fmt: skip
    assert "problems" not in report.summary() and report.summary()["counts"] == {"field-unknown": 1}
    assert (report.exit_code(), report.exit_code(strict=True)) == (0, 1)


def test_image_and_token_checks_in_worker_processes_match_a_single_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name, size in (("a.jpg", (320, 240)), ("b.jpg", (30, 90))):
        write_image(tmp_path / "images" / name, size)
    lines = [record(f"r{index}", "a.jpg", "b.jpg" if index % 3 else "missing.jpg") for index in range(30)]
    path = write_jsonl(tmp_path / "d.jsonl", *lines)
    monkeypatch.setattr(run, "_IMAGE_CHUNK_BYTES", 500)
    single = validate([path], model_dir=MODEL_DIR, max_length=1000, workers=1)
    assert validate([path], model_dir=MODEL_DIR, max_length=1000, workers=2) == single
    assert {problem.code for problem in single.problems} == {"image-missing", "sequence-too-long"}


def test_progress_reaches_the_total_number_of_bytes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(run, "_LINE_CHUNK_BYTES", 300)
    path = write_jsonl(tmp_path / "d.jsonl", *(record(f"r{index}") for index in range(20)))
    calls: list[tuple[int, int]] = []
    validate([path], images="none", workers=1, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) > 3
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (path.stat().st_size, path.stat().st_size)
