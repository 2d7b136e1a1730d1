"""Every case under tests/example-files/{positive,negative}/ validates to exactly its expected.json.

A case is a folder holding JSONL files, their images and ``expected.json``::

    {"description": "...", "paths": ["data.jsonl"], "options": {"images": "decode"},
     "problems": [{"file": "data.jsonl", "line": 2, "code": "image-decode-failed"}]}

``paths`` (default: the case folder itself, as a dataset folder) and ``options`` (keyword arguments
of ``validate``) are optional. Positive cases must pass (warnings allowed); negative ones must fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phi3v_data import validate

EXAMPLES = Path(__file__).resolve().parent.parent / "example-files"


def cases(kind: str) -> list[Path]:
    return sorted(path.parent for path in (EXAMPLES / kind).glob("*/expected.json"))


def found_problems(case: Path) -> tuple[list[tuple[str, int | None, str]], object]:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    paths = [case / path for path in expected.get("paths", ["."])]
    report = validate(paths, workers=1, **expected.get("options", {}))
    found = [
        (Path(problem.file).relative_to(case).as_posix(), problem.line, problem.code) for problem in report.problems
    ]
    return found, report


def expected_problems(case: Path) -> list[tuple[str, int | None, str]]:
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    return [(problem["file"], problem["line"], problem["code"]) for problem in expected["problems"]]


@pytest.mark.parametrize("case", cases("positive"), ids=lambda case: case.name)
def test_positive_case_passes_with_exactly_its_warnings(case: Path) -> None:
    found, report = found_problems(case)
    assert found == expected_problems(case)
    assert report.ok and report.records > 0


@pytest.mark.parametrize("case", cases("negative"), ids=lambda case: case.name)
def test_negative_case_reports_exactly_its_problems(case: Path) -> None:
    found, report = found_problems(case)
    assert found == expected_problems(case)
    assert not report.ok


def test_there_are_cases_of_both_kinds() -> None:
    assert len(cases("positive")) >= 5 and len(cases("negative")) >= 5
