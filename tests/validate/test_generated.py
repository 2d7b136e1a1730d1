"""Generated files match the code: the JSON Schema, the pre-commit hook, the README's problem-code table."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import yaml

from phi3v_data.codes import ALL_CODES, CODE_INFO

REPO_ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = REPO_ROOT / "tests" / "example-files" / "positive" / "cookbook-ucf101" / "ucf101_val.jsonl"


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate", REPO_ROOT / "scripts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_generated_file_has_drifted() -> None:
    generator = load_generator()
    assert generator.stale_files() == [], "run: python scripts/generate.py"


def test_every_code_has_a_severity_and_a_description() -> None:
    assert list(CODE_INFO) == list(ALL_CODES)
    assert all(severity in ("error", "warning") and text.endswith(".") for severity, text in CODE_INFO.values())


def documented_codes(readme: str) -> dict[str, tuple[str, str]]:
    """The rows of the Markdown table between the code markers: code -> (severity, meaning)."""
    block = re.search(r"<!-- codes:start -->\n(.*?)\n<!-- codes:end -->", readme, re.DOTALL)
    assert block, "README.md needs the problem-code table between <!-- codes:start --> and <!-- codes:end -->"
    rows = [re.split(r"(?<!\\)\|", line.strip()[1:-1]) for line in block.group(1).splitlines()[2:]]
    return {
        code.strip().strip("`"): (severity.strip(), meaning.strip().replace("\\|", "|"))
        for code, severity, meaning in rows
    }


def test_the_generated_table_reads_back_as_the_code_information() -> None:
    generated = load_generator().readme_with_table("# Title\n<!-- codes:start -->\n<!-- codes:end -->\n")
    assert documented_codes(generated) == {code: CODE_INFO[code] for code in ALL_CODES}


def test_the_readme_table_lists_exactly_the_codes_with_their_severities() -> None:
    documented = documented_codes((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert list(documented) == list(ALL_CODES)
    assert documented == {code: CODE_INFO[code] for code in ALL_CODES}


def test_the_pre_commit_hook_runs_the_validator_on_jsonl_files() -> None:
    (hook,) = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "phi3v-data-validate" and hook["entry"] == "phi3v-data validate"
    assert re.search(hook["files"], "data/train.jsonl") and not re.search(hook["files"], "train.json")


def test_the_cookbook_lines_validate_against_the_shipped_schema() -> None:
    schema = json.loads((REPO_ROOT / "schema" / "record.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    lines = COOKBOOK.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["val-0000000300", "val-0000000301"]
    for line in lines:
        validator.validate(json.loads(line))
    assert not validator.is_valid({"id": "", "source": "s", "conversations": []})
