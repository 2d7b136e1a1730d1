"""``phi3v-train``: fine-tune (``phi3v-train --data DIR ...``) and evaluate (``phi3v-train eval ...``).

Training is the default command, so ``phi3v-train --data D --model M ...`` and
``phi3v-train train --data D ...`` are the same. Options are generated from the pydantic settings
(:class:`~phi3v_train.config.TrainConfig`, :class:`~phi3v_train.config.EvalConfig`): each field is a
``--kebab-case`` option and a YAML key for ``--config``; the command line wins over the file.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from phi3v_data.errors import Phi3vDataError, UsageError
from phi3v_train.config import EvalConfig, TrainConfig, load_yaml, resolve, to_yaml

# Precision is chosen with one switch, as in the cookbook's --bf16.
_PRECISION_SWITCHES = ("bf16", "fp16", "fp32")


class _TrainByDefault(click.Group):
    """A group whose first argument, when it names no command, starts the ``train`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["train", *args]
        return super().parse_args(ctx, args)


def _settings_options(settings: type[BaseModel]) -> Callable[[Callable], Callable]:
    """Click options for every field of ``settings``, all defaulting to None (= not given)."""

    def decorate(function: Callable) -> Callable:
        # Required options first in --help, then the rest in declaration order.
        fields = sorted(settings.model_fields.items(), key=lambda item: not item[1].is_required())
        for name, field in reversed(fields):
            function = _option(name, field.alias or name, field.annotation, field.description or "")(function)
        function = click.option(
            "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="A YAML file of options (the command line overrides it).",
        )(function)
        # The deepspeed launcher appends --local_rank=N; LOCAL_RANK in the environment says the same.
        return click.option("--local_rank", "--local-rank", type=int, hidden=True, expose_value=False)(function)

    return decorate


def _option(name: str, option: str, annotation: Any, description: str) -> Callable[[Callable], Callable]:
    flag = "--" + option.replace("_", "-")
    inner = _without_none(annotation)
    if name == "precision":
        return _precision_switches
    if name == "resume":
        return click.option(flag, name, is_flag=False, flag_value="auto", default=None, metavar="[auto|PATH]", help=description)
    if inner is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=description)
    if typing.get_origin(inner) is list:
        return click.option(flag, name, multiple=True, type=_click_type(typing.get_args(inner)[0]), help=description)
    return click.option(flag, name, type=_click_type(inner), default=None, help=description)


def _precision_switches(function: Callable) -> Callable:
    for precision in reversed(_PRECISION_SWITCHES):
        function = click.option(
            f"--{precision}", "precision", flag_value=precision, default=None,
            help=f"Train in {precision}" + (" (the only choice on the CPU)." if precision == "fp32" else " mixed precision."),
        )(function)
    return function


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation


def _click_type(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice(typing.get_args(annotation))
    if annotation is Path:
        return click.Path(path_type=Path)
    return annotation


def _settings(settings: type[BaseModel], config_file: Path | None, given: dict[str, Any]):
    cli_values = {key: (list(value) if isinstance(value, tuple) else value) for key, value in given.items()}
    cli_values = {key: value for key, value in cli_values.items() if value not in (None, [])}
    file_values = load_yaml(config_file) if config_file else {}
    return resolve(settings, file_values, cli_values, source=str(config_file or ""))


def _user_message(error: Exception) -> str:
    """The error's own message; an error re-raised from a data-loader worker carries its traceback."""
    message = str(error)
    if "Original Traceback" in message:
        return message.rsplit(f"{type(error).__name__}: ", 1)[-1].strip()
    return message


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except UsageError as error:
        raise click.UsageError(_user_message(error)) from None
    except Phi3vDataError as error:
        raise click.ClickException(_user_message(error)) from None


@click.group(cls=_TrainByDefault, invoke_without_command=False, no_args_is_help=True)
def main() -> None:
    """Fine-tune Phi-3.5-vision (or Phi-3-vision) on validated phi3v-data datasets, and evaluate it.

    \b
    phi3v-train --data DIR --model ID_OR_DIR --mode lora --output-dir OUT   (same as `phi3v-train train ...`)
    phi3v-train eval --model OUT --data DIR
    """


@main.command()
@_settings_options(TrainConfig)
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as YAML and exit.")
def train(config_file: Path | None, print_config: bool, **given: Any) -> None:
    """Fine-tune: full, frozen-vision, lora or qlora."""
    config = _run(lambda: _settings(TrainConfig, config_file, given))
    if print_config:
        click.echo(to_yaml(config), nl=False)
        return
    from phi3v_train.trainer import run_training

    _run(lambda: run_training(config))


@main.command("eval")
@_settings_options(EvalConfig)
def evaluate(config_file: Path | None, **given: Any) -> None:
    """Generate answers with a trained model; report exact match and ANLS, save predictions as JSONL."""
    config = _run(lambda: _settings(EvalConfig, config_file, given))
    from phi3v_train.evaluate import run_evaluation

    _run(lambda: run_evaluation(config))
