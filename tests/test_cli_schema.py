"""`phi3v-data schema` prints the generated JSON Schema, the one shipped in schema/."""

import json
from importlib import resources

import jsonschema
from click.testing import CliRunner

from phi3v_data.cli import main
from phi3v_data.format import record_json_schema


def test_schema_prints_the_shipped_file() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    shipped = resources.files("phi3v_data.schemas").joinpath("record.schema.json").read_text(encoding="utf-8")
    assert result.output == shipped
    assert json.loads(result.output) == record_json_schema()


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(CliRunner().invoke(main, ["schema"]).output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
