"""``phi3v-data schema``: print the JSON Schema of one JSONL line."""

from __future__ import annotations

import json

import click

from phi3v_data.format import record_json_schema


def record_schema_text() -> str:
    """The schema as the text of ``schema/record.schema.json`` (which ``scripts/generate.py`` writes)."""
    return json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n"


@click.command()
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of one record, generated from the format's models."""
    click.echo(record_schema_text(), nl=False)
