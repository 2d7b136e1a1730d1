"""The ``phi3v-data`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import importlib

import click

# Each subcommand's module loads only when it runs (or for --help), so `phi3v-data validate` does not
# pay for importing the converters.
SUBCOMMANDS = {
    "convert": "phi3v_data.cli.convert:convert",
    "schema": "phi3v_data.cli.schema:schema",
    "validate": "phi3v_data.cli.validate:validate",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="phi3v-data")
def main() -> None:
    """Convert, validate and inspect conversations/images JSONL datasets for Phi-3.5-vision."""
