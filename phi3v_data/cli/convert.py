"""``phi3v-data convert``: one subcommand per registered source, built from its options model.

``phi3v-data convert SOURCE --input RAW --out OUT [--workers N] [--resume | --overwrite] [source options]``
and ``phi3v-data convert --list``. Each field of the source's ``Options`` model becomes a
``--kebab-case`` option (see :func:`option_params`). Exit codes: 0 everything converted; 1 a valid
dataset was written but some inputs were rejected (each named on stderr and in ``manifest.json``);
2 a usage error or an input folder that is not the source's layout (nothing written); 3 the
conversion could not finish (a worker died, the disk is full, a converter bug), the finished items
are kept for ``--resume``.
"""

from __future__ import annotations

import sys
import types
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, NoReturn, Union, get_args, get_origin

import click
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from phi3v_data.converters.base import Converter, ConverterOptions
from phi3v_data.converters.registry import ConverterLoadError, list_sources, load_converter, source_names
from phi3v_data.converters.runner import ConversionError, ConversionReport, run_conversion
from phi3v_data.errors import Phi3vDataError

EXIT_USAGE = 2
EXIT_FAILED = 3
# Names the common options take; a source's own option may not reuse them.
RESERVED_OPTION_NAMES = frozenset({"input", "input_dir", "out", "out_dir", "workers", "resume", "overwrite", "help"})
_SCALAR_TYPES: dict[Any, click.ParamType] = {
    int: click.INT,
    float: click.FLOAT,
    str: click.STRING,
    Path: click.Path(path_type=Path),
}


class _SourceGroup(click.Group):
    """Subcommands come from the entry points, loaded only when named or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return source_names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in source_names():
            return None
        try:
            return source_command(name, load_converter(name))
        except ConverterLoadError as error:
            return _unloadable_source_command(name, str(error))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and not args[0].startswith("-") and args[0] not in source_names():
            ctx.fail(f"unknown source {args[0]!r}; the sources are: {', '.join(source_names())} (see --list)")
        return super().resolve_command(ctx, args)


@click.group(cls=_SourceGroup, invoke_without_command=True, subcommand_metavar="SOURCE [OPTIONS]")
@click.option("--list", "show_list", is_flag=True, help="List the sources (built-in and installed plugins) and exit.")
@click.pass_context
def convert(ctx: click.Context, show_list: bool) -> None:
    """Convert a raw dataset into the conversations/images format.

    Writes OUT/images/<split>/..., OUT/<source>_<split>.jsonl per split and OUT/manifest.json, then
    validates OUT. Run `phi3v-data convert SOURCE --help` for a source's options.
    """
    if show_list:
        for listing in list_sources():
            click.echo(f"{listing.name:<16}{listing.summary or 'cannot be loaded: ' + str(listing.error)}")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        ctx.fail("missing SOURCE; run `phi3v-data convert --list` to see the sources")


def source_command(name: str, converter: Converter) -> click.Command:
    """The ``convert <name>`` subcommand: the common options plus one per field of the source's options."""

    def run(input_dir: Path, out_dir: Path, workers: int | None, resume: bool, overwrite: bool, **values: Any) -> None:
        if resume and overwrite:
            raise click.UsageError("--resume and --overwrite exclude each other")
        options = _build_options(converter.Options, values)
        mode = "resume" if resume else "overwrite" if overwrite else "new"
        try:
            with ExitStack() as bars:
                progress = _TerminalProgress(name, bars) if sys.stderr.isatty() else None
                report = run_conversion(
                    converter, input_dir, out_dir, options, workers=workers, mode=mode, progress=progress
                )
        except ConversionError as error:
            _exit_with(str(error), EXIT_FAILED)
        except Phi3vDataError as error:
            _exit_with(str(error), EXIT_USAGE)
        except OSError as error:
            _exit_with(f"{error}; the finished items are kept: rerun with --resume", EXIT_FAILED)
        except KeyboardInterrupt:
            _exit_with(f"interrupted; the finished items are kept in {out_dir}: rerun with --resume", 130)
        for rejection in report.rejected:
            click.echo(f"rejected {rejection.input}: {rejection.reason}", err=True)
        click.echo(summary_line(name, report))
        click.get_current_context().exit(report.exit_code)

    common = [
        click.Option(
            ["--input", "input_dir"], required=True, type=click.Path(path_type=Path), help="The raw dataset folder."
        ),
        click.Option(
            ["--out", "out_dir"], required=True, type=click.Path(path_type=Path), help="The dataset folder to write."
        ),
        click.Option(["--workers"], type=click.IntRange(min=1), help="Worker processes  [default: all cores]"),
        click.Option(
            ["--resume"], is_flag=True, help="Finish an interrupted conversion into OUT (same source and options)."
        ),
        click.Option(["--overwrite"], is_flag=True, help="Replace a previous conversion in OUT."),
    ]
    doc = (type(converter).__doc__ or converter.summary).strip()
    return click.Command(
        name, params=common + option_params(converter.Options), callback=run, help=doc, short_help=converter.summary
    )


def _unloadable_source_command(name: str, error: str) -> click.Command:
    """A stand-in that shows why the source cannot load, in --help and when run."""
    return click.Command(
        name,
        callback=lambda: _exit_with(error, EXIT_USAGE),
        help=error,
        short_help=f"cannot be loaded: {error}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def option_params(model: type[ConverterOptions]) -> list[click.Option]:
    """One click option per field: ``--kebab-case`` named, typed, with the field's docstring as help.

    bool fields become ``--x/--no-x``; ``Literal`` fields a choice; ``tuple``/``list`` fields take
    comma-separated values, repeatable; ``X | None`` fields may be left unset. Constraints (``ge=1``...)
    are checked by the model itself when the command runs.
    """
    return [_option(name, field) for name, field in model.model_fields.items()]


def _option(name: str, field: FieldInfo) -> click.Option:
    if name in RESERVED_OPTION_NAMES:
        raise ConverterLoadError(f"the option {name!r} clashes with a common option of `phi3v-data convert`; rename it")
    flag = "--" + name.replace("_", "-")
    annotation = _without_none(field.annotation)
    default = field.get_default(call_default_factory=True)
    settings: dict[str, Any] = {"help": field.description, "show_default": True}
    if annotation is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", name], default=default, **settings)
    if get_origin(annotation) is Literal:
        choices = {str(choice): choice for choice in get_args(annotation)}
        return click.Option(
            [flag, name],
            type=click.Choice(list(choices)),
            default=None if default is None else str(default),
            callback=lambda _ctx, _param, value: None if value is None else choices[value],
            **settings,
        )
    if get_origin(annotation) in (tuple, list):
        return click.Option(
            [flag, name],
            multiple=True,
            default=default,
            callback=lambda _ctx, _param, values: tuple(part for value in values for part in value.split(",") if part),
            **settings,
        )
    if annotation not in _SCALAR_TYPES:
        raise ConverterLoadError(
            f"the option {name!r} has the type {annotation!r}, which the command line cannot express"
        )
    return click.Option([flag, name], type=_SCALAR_TYPES[annotation], default=default, **settings)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _build_options(model: type[ConverterOptions], values: dict[str, Any]) -> ConverterOptions:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        messages = []
        for problem in error.errors():
            flag = f"--{str(problem['loc'][0]).replace('_', '-')}: " if problem["loc"] else ""
            messages.append(flag + problem["msg"].removeprefix("Value error, "))
        raise click.UsageError("; ".join(messages)) from None


class _TerminalProgress:
    """A progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, stack: ExitStack) -> None:
        self._label = label
        self._stack = stack
        self._bar: Any = None

    def start(self, total: int, done: int) -> None:
        self._bar = self._stack.enter_context(
            click.progressbar(length=total, label=self._label, file=sys.stderr, show_pos=True, show_eta=True)
        )
        self._bar.update(done)

    def advance(self) -> None:
        self._bar.update(1)


def summary_line(name: str, report: ConversionReport) -> str:
    """Counts and throughput, e.g. ``ucf101: 8 records (train 4, val 2, test 2), 64 images, ...``."""
    counts = report.manifest.counts
    splits = ", ".join(f"{split} {entry.records}" for split, entry in report.manifest.splits.items())
    rate = report.converted_now / report.seconds if report.seconds > 0 else 0.0
    resumed = report.items - report.converted_now
    workers = f"{report.workers} worker{'s' if report.workers > 1 else ''}"
    return (
        f"{name}: {counts['records']} records ({splits or 'none'}), {counts['images']} images, "
        f"{counts['rejected']} rejected, {counts['ignored']} ignored, {counts['skipped']} skipped; "
        f"{report.converted_now} items converted in {report.seconds:.1f} s ({rate:.1f} items/s, {workers})"
        + (f", {resumed} finished before" if resumed else "")
        + f"; wrote {report.out_dir}"
    )


def _exit_with(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    click.get_current_context().exit(code)
