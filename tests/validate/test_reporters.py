"""Each output format renders the same report faithfully."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ElementTree

import pytest

from phi3v_data.problems import Problem
from phi3v_data.reporters import REPORTER_BY_NAME
from phi3v_data.validation.report import FileSummary, TokenStats, ValidationReport

REPORT = ValidationReport(
    problems=(
        Problem("file-empty", "the file holds no record", "empty.jsonl"),
        Problem("schema-violation", "id must be a string", "data/train.jsonl", 3),
        Problem("field-unknown", "x,y: 50% odd\nsecond line", "data/train.jsonl", 7, "r7"),
    ),
    files=(
        FileSummary("empty.jsonl", 0, 1, 0),
        FileSummary("data/train.jsonl", 9, 1, 1),
        FileSummary("clean.jsonl", 2, 0, 0),
    ),
    options={"images": "none"},
    tokens=TokenStats("sequence", 9, 100, 1500, 2900, 3000),
)


def test_text_lists_problems_one_per_line_then_the_summary_and_token_statistics() -> None:
    assert REPORTER_BY_NAME["text"].render(REPORT).splitlines() == [
        "empty.jsonl: file-empty the file holds no record",
        "data/train.jsonl:3: schema-violation id must be a string",
        "data/train.jsonl:7: field-unknown x,y: 50% odd\\nsecond line",
        "3 files, 11 records: 2 errors, 1 warning",
        "tokens per record (9 records): min 100, median 1,500, p95 2,900, max 3,000",
    ]


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"num_crops": 16, "num_crops_given": False}, " at num_crops 16 (the default: no record holds several images)"),
        ({"num_crops": 4, "num_crops_given": False}, " at num_crops 4 (the default: records hold several images)"),
        ({"num_crops": 4, "num_crops_given": True}, " at num_crops 4 (as given)"),
    ],
)
def test_the_token_line_says_which_num_crops_counted_and_why(options: dict, phrase: str) -> None:
    report = dataclasses.replace(REPORT, options=options)
    assert REPORTER_BY_NAME["text"].render(report).splitlines()[-1] == (
        f"tokens per record (9 records){phrase}: min 100, median 1,500, p95 2,900, max 3,000"
    )
    assert json.loads(REPORTER_BY_NAME["json"].render(report))["options"] == options


def test_json_is_the_reports_dictionary() -> None:
    document = json.loads(REPORTER_BY_NAME["json"].render(REPORT))
    assert document == json.loads(json.dumps(REPORT.to_dict()))
    assert list(document)[:5] == ["ok", "records", "errors", "warnings", "problems"]
    assert document["problems"][2] == {
        "code": "field-unknown", "message": "x,y: 50% odd\nsecond line", "file": "data/train.jsonl",
        "line": 7, "id": "r7", "severity": "warning",
    }  # fmt: skip


def test_github_annotations_escape_data_and_properties() -> None:
    lines = REPORTER_BY_NAME["github"].render(REPORT).splitlines()
    assert lines[:3] == [
        "::error file=empty.jsonl,title=file-empty::the file holds no record",
        "::error file=data/train.jsonl,line=3,title=schema-violation::id must be a string",
        "::warning file=data/train.jsonl,line=7,title=field-unknown::x,y: 50%25 odd%0Asecond line",
    ]
    assert lines[3] == "3 files, 11 records: 2 errors, 1 warning"


def test_junit_has_a_suite_per_file_and_fails_on_errors_or_on_warnings_when_strict() -> None:
    for strict, failures in ((False, 2), (True, 3)):
        root = ElementTree.fromstring(REPORTER_BY_NAME["junit"].render(REPORT, strict=strict))
        suites = root.findall("testsuite")
        assert [suite.get("name") for suite in suites] == ["empty.jsonl", "data/train.jsonl", "clean.jsonl"]
        assert root.get("failures") == str(failures) and root.get("tests") == "4"
        assert len(root.findall(".//failure")) == failures
        assert [case.get("name") for case in suites[2]] == ["2 records"]


def test_junit_replaces_characters_xml_cannot_carry() -> None:
    report = ValidationReport(
        (Problem("field-unknown", "bad \x00\x1b name", "a.jsonl", 1),), (FileSummary("a.jsonl", 1, 0, 1),), {}
    )
    root = ElementTree.fromstring(REPORTER_BY_NAME["junit"].render(report))
    assert root.find(".//system-out").text == "warning: bad \ufffd\ufffd name"  # type: ignore[union-attr]
