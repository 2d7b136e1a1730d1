"""``phi3v-train``: fine-tune (``phi3v-train --data DIR ...``) and evaluate (``phi3v-train eval ...``).

Training is the default command, so ``phi3v-train --data D --model M ...`` and
``phi3v-train train --data D ...`` are the same. Options are generated from the pydantic settings
(:class:`~phi3v_train.config.TrainConfig`, :class:`~phi3v_train.config.EvalConfig`): each field is a
``--kebab-case`` option and a YAML key for ``--config``; the command line wins over the file, and
``--OPTION null`` unsets an optional value (as ``--print-config`` writes it).
"""

from __future__ import annotations

import importlib
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from phi3v_data.errors import Phi3vDataError, UsageError
from phi3v_train.config import EvalConfig, TrainConfig, load_yaml, resolve, to_yaml
from phi3v_train.quiet import quiet_libraries
from phi3v_train.run_folder import TrainingInterrupted
from phi3v_train.validated import InvalidDataError

# Precision is chosen with one switch, as in the cookbook's --bf16.
_PRECISION_HELP = {
    "bf16": "mixed precision (the default on a GPU that supports it)",
    "fp16": "mixed precision (the default on other GPUs)",
    "fp32": "(the only choice on the CPU)",
}
EXIT_DATA_ERRORS = 1
EXIT_REFUSED = 2
# As `phi3v-data convert`'s 3: stopped before the end, what was done is kept, rerun with --resume.
EXIT_INTERRUPTED = 3
DEBUG_ENV = "PHI3V_TRAIN_DEBUG"
# What the [train] extra installs: without them the trainer cannot start, and says how to fix it.
TRAIN_EXTRA_MODULES = frozenset({"torch", "torchvision", "transformers", "accelerate", "peft", "yaml"})
EXIT_CODES_EPILOG = f"""Exit status: 0 done; {EXIT_DATA_ERRORS} --validate found errors in the data; {EXIT_REFUSED} refused: bad options,
data without a matching manifest.json, a --model that cannot be found, an input that cannot be read,
an --output-dir holding another run, or an internal error ({DEBUG_ENV}=1 shows its traceback);
{EXIT_INTERRUPTED} interrupted (Ctrl-C, SIGTERM): a run that had started training saved a checkpoint, and the
message gives the command that resumes it."""
# An optional setting given this value on the command line is unset, overriding the --config file.
NULL = "null"
_UNSET = object()


class _Refused(click.ClickException):
    """A refusal the user can fix, or a bug: one sentence on stderr and exit status 2."""

    exit_code = EXIT_REFUSED


class _DataErrors(click.ClickException):
    """``--validate`` found errors in the data: exit status 1, as ``phi3v-data validate`` does."""

    exit_code = EXIT_DATA_ERRORS


class _Interrupted(click.ClickException):
    """Ctrl-C or SIGTERM stopped the command: exit status 3, with what was saved and how to continue."""

    exit_code = EXIT_INTERRUPTED


class _TrainByDefault(click.Group):
    """A group whose first argument, when it names no command, starts the ``train`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        own_options = {name for parameter in self.get_params(ctx) for name in parameter.opts}  # -h, --version
        if args and args[0] not in self.commands and args[0] not in own_options:
            args = ["train", *args]
        return super().parse_args(ctx, args)


class _Nullable(click.ParamType):
    """An optional setting's type: ``null`` unsets it, anything else converts as the setting's own type does."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = inner.name

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        metavar = self.inner.get_metavar(param, ctx) or self.inner.name.upper()
        return f"{metavar[:-1]}|{NULL}]" if metavar.startswith("[") else f"{metavar}|{NULL}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == NULL:
            return _UNSET
        return self.inner.convert(value, param, ctx)


def _settings_options(settings: type[BaseModel], verb: str) -> Callable[[Callable], Callable]:
    """Click options for every field of ``settings``, all defaulting to None (= not given).

    The settings' own defaults apply after the YAML file's values, so click must not fill them in;
    --help shows them all the same.
    """

    def decorate(function: Callable) -> Callable:
        # Required options first in --help, then the rest in declaration order.
        fields = sorted(settings.model_fields.items(), key=lambda item: not item[1].is_required())
        for name, field in reversed(fields):
            function = _option(name, field, verb)(function)
        function = click.option(
            "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="A YAML file of options (the command line overrides it).",
        )(function)
        # The deepspeed launcher appends --local_rank=N; LOCAL_RANK in the environment says the same.
        return click.option("--local_rank", "--local-rank", type=int, hidden=True, expose_value=False)(function)

    return decorate


def _option(name: str, field: FieldInfo, verb: str) -> Callable[[Callable], Callable]:
    flag = "--" + (field.alias or name).replace("_", "-")
    inner = _without_none(field.annotation)
    default = _default_text(field, flag)
    # click's show_default would print a text default in parentheses; the help says it plainly instead.
    described = {"help": (field.description or "") + (f"  [default: {default}]" if default else "")}
    if name == "precision":
        return _precision_switches(verb)
    if name == "resume":
        return click.option(
            flag, name, is_flag=False, flag_value="auto", default=None, type=_Nullable(click.STRING),
            metavar=f"[auto|PATH|{NULL}]", **described,
        )
    if inner is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, **described)
    if typing.get_origin(inner) is list:
        return click.option(flag, name, multiple=True, type=_click_type(typing.get_args(inner)[0]), **described)
    optional = inner is not field.annotation  # `X | None`: the command line may unset it
    click_type = _click_type(inner)
    return click.option(flag, name, type=_Nullable(click_type) if optional else click_type, default=None, **described)


def _default_text(field: FieldInfo, flag: str) -> str | None:
    """The settings' default as --help shows it (None: none to show, or the help text explains it)."""
    if field.is_required():
        return None
    default = field.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return flag if default else f"--no-{flag[2:]}"
    return None if default in (None, []) else str(default)


def _precision_switches(verb: str) -> Callable[[Callable], Callable]:
    def decorate(function: Callable) -> Callable:
        # One flag each (not one shared destination, where click would keep the last given): two are refused.
        for precision, description in reversed(_PRECISION_HELP.items()):
            function = click.option(
                f"--{precision}", precision, is_flag=True, help=f"{verb} in {precision} {description}."
            )(function)
        return function

    return decorate


def _chosen_precision(given: dict[str, Any]) -> str | None:
    """The one precision switch given (removed from ``given``), or None."""
    chosen = [precision for precision in _PRECISION_HELP if given.pop(precision)]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join('--' + c for c in chosen)} contradict each other: give one precision switch")
    return chosen[0] if chosen else None


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation


def _click_type(annotation: Any) -> click.ParamType:
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice(typing.get_args(annotation))
    if annotation is Path:
        return click.Path(path_type=Path)
    return click.types.convert_type(annotation)


def _settings(settings: type[BaseModel], config_file: Path | None, given: dict[str, Any]):
    given = dict(given)
    given["precision"] = _chosen_precision(given)
    # click passes None for an option not given, and () for a repeatable one; `null` means None.
    cli_values = {
        key: None if value is _UNSET else list(value) if isinstance(value, tuple) else value
        for key, value in given.items()
        if value is not None and value != ()
    }
    file_values = load_yaml(config_file) if config_file else {}
    return resolve(settings, file_values, cli_values, source=str(config_file or ""))


def _user_message(error: Exception) -> str:
    """The error's own message; an error re-raised from a data-loader worker carries its traceback."""
    message = str(error)
    if "Original Traceback" in message:
        return message.rsplit(f"{type(error).__name__}: ", 1)[-1].strip()
    return message


def _run(action: Callable[[], Any]) -> Any:
    """``action()``, its exceptions turned into one sentence and the exit status of the project's convention."""
    try:
        return action()
    except KeyboardInterrupt:
        raise _Interrupted("interrupted: nothing was saved") from None
    except TrainingInterrupted as error:
        raise _Interrupted(str(error)) from None
    except UsageError as error:
        raise click.UsageError(_user_message(error)) from None
    except InvalidDataError as error:
        raise _DataErrors(_user_message(error)) from None
    except Phi3vDataError as error:
        raise _Refused(_user_message(error)) from None
    except Exception as error:  # a missing extra, a bug, or a library failing in a way nobody foresaw
        if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in TRAIN_EXTRA_MODULES:
            raise _Refused(f"phi3v-train needs {error.name}, which is not installed: pip install 'phi3v-data[train]'") from None
        if os.environ.get(DEBUG_ENV):
            raise
        summary = _user_message(error).splitlines()[0] if str(error) else ""
        raise _Refused(
            f"internal error ({type(error).__name__}{': ' + summary if summary else ''}); "
            f"rerun with {DEBUG_ENV}=1 for the traceback and please report it"
        ) from None


def _run_quietly(action: Callable[[], Any], quantizing: bool) -> Any:
    """:func:`_run` with the libraries' noise filtered (:mod:`phi3v_train.quiet`)."""

    def quietly() -> Any:
        with quiet_libraries(quantizing):
            return action()

    return _run(quietly)


@click.group(
    cls=_TrainByDefault, invoke_without_command=False, no_args_is_help=True, epilog=EXIT_CODES_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="phi3v-data", prog_name="phi3v-train")
def main() -> None:
    """Fine-tune Phi-3.5-vision (or Phi-3-vision) on validated phi3v-data datasets, and evaluate it.

    \b
    phi3v-train --data DIR --model ID_OR_DIR --mode lora --output-dir OUT   (same as `phi3v-train train ...`)
    phi3v-train eval --model OUT --data DIR
    """


@main.command(epilog=EXIT_CODES_EPILOG)
@_settings_options(TrainConfig, "Train")
@click.option(
    "--print-config", is_flag=True,
    help="Print the resolved configuration as YAML and exit; unset values keep null, with a comment "
    "saying what they resolve to here (the model's weights are not loaded).",
)
def train(config_file: Path | None, print_config: bool, **given: Any) -> None:
    """Fine-tune: full, frozen-vision, lora or qlora."""
    config = _run(lambda: _settings(TrainConfig, config_file, given))
    if print_config:
        _run(lambda: click.echo(_annotated_yaml(config), nl=False))
        return
    _run_quietly(lambda: importlib.import_module("phi3v_train.trainer").run_training(config), config.mode == "qlora")


def _annotated_yaml(config: TrainConfig) -> str:
    from phi3v_train.hardware import Hardware
    from phi3v_train.preview import unset_settings_notes

    return to_yaml(config, unset_settings_notes(config, Hardware.detect()))


@main.command("eval", epilog=EXIT_CODES_EPILOG)
@_settings_options(EvalConfig, "Evaluate")
def evaluate(config_file: Path | None, **given: Any) -> None:
    """Generate answers with a trained model; report exact match and ANLS, save predictions as JSONL."""
    config = _run(lambda: _settings(EvalConfig, config_file, given))
    _run_quietly(lambda: importlib.import_module("phi3v_train.evaluate").run_evaluation(config), quantizing=False)
