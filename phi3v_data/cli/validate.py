"""``phi3v-data validate``: check datasets and report in the format CI wants.

``validate`` (the click command) only parses the command line into :class:`ValidateArgs`;
:func:`execute` runs it and returns the exit status: 0 clean, 1 problems found (warnings count
with ``--strict``), 2 a usage error, an unreadable input or an internal error. Problems in the data
never raise; exceptions meant for the user print one sentence, never a traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from phi3v_data.atomic import atomic_write_text
from phi3v_data.errors import Phi3vDataError, UsageError
from phi3v_data.hd_crop import MAX_NUM_CROPS
from phi3v_data.images import DEFAULT_MAX_PIXELS
from phi3v_data.reporters import REPORTER_BY_NAME
from phi3v_data.validation import IMAGES_MODES, ValidationReport
from phi3v_data.validation import validate as run_validation

EXIT_USAGE = 2


@dataclass(frozen=True)
class ValidateArgs:
    """The parsed command line of ``phi3v-data validate``."""

    paths: tuple[Path, ...]
    images_root: Path | None
    images: str
    max_pixels: int
    output_format: str
    output: Path | None
    strict: bool
    model: Path | None
    num_crops: int | None
    max_length: int | None
    lengths: Path | None
    workers: int | None
    write_manifest: bool
    progress: bool


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--images-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder the image paths are relative to.  [default: images/ beside each JSONL file]",
)
@click.option(
    "--images",
    type=click.Choice(IMAGES_MODES),
    default="header",
    show_default=True,
    help="How far to check image files: decode the pixels, read the header, only check they exist, or "
    "only check the paths as written.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Largest image (width x height) accepted; bigger ones are reported as decompression bombs.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(REPORTER_BY_NAME)),
    default="text",
    show_default=True,
    help="text for people; json; github (workflow annotations); junit (XML for CI test tabs).",
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report here, not stdout.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option(
    "--model",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder with the model's tokenizer files: count every record's tokens (reads image headers).",
)
@click.option(
    "--num-crops",
    type=click.IntRange(1, MAX_NUM_CROPS),
    help="The processor's num_crops: how many 336-pixel crops an image may be cut into.  [default: as "
    "phi3v-train chooses it, 4 when any record holds several images (video frames), else 16]",
)
@click.option("--max-length", type=click.IntRange(min=1), help="Flag records longer than this (needs --model).")
@click.option(
    "--lengths",
    type=click.Path(path_type=Path, dir_okay=False),
    help='Write {"file", "line", "id", "tokens"} per record as JSON lines (needs --model).',
)
@click.option("--workers", type=click.IntRange(min=1), help="Processes to use.  [default: all cores]")
@click.option(
    "--write-manifest",
    is_flag=True,
    help="When the dataset folder validates, write its manifest.json (the trainer requires one).",
)
def validate(**options: Any) -> None:
    """Check JSONL files and dataset folders (PATH...) against the conversations/images format."""
    args = ValidateArgs(
        paths=options.pop("paths"),
        progress=options["output_format"] == "text" and sys.stderr.isatty(),
        **options,
    )
    sys.exit(execute(args))


def execute(args: ValidateArgs) -> int:
    """Run a parsed ``validate`` command; returns its exit status."""
    try:
        report = _run(args)
        rendered = REPORTER_BY_NAME[args.output_format].render(report, strict=args.strict)
        if args.output is None:
            click.echo(rendered, nl=False)
        else:
            atomic_write_text(args.output, rendered)
        if args.write_manifest:
            _write_manifest(args, report)
    except Phi3vDataError as error:
        click.echo(f"phi3v-data validate: {error}", err=True)
        return EXIT_USAGE
    except OSError as error:  # inputs are read inside validate(); what is left is writing --output, --lengths
        click.echo(f"phi3v-data validate: cannot write {error.filename}: {error.strerror or error}", err=True)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - a bug: say so in one line instead of a traceback
        click.echo(f"phi3v-data validate: internal error ({type(error).__name__}: {error}); please report it", err=True)
        return EXIT_USAGE
    return report.exit_code(args.strict)


def _run(args: ValidateArgs) -> ValidationReport:
    if args.write_manifest:
        _check_manifest_arguments(args)
    with _ProgressBar() as progress:
        return run_validation(
            args.paths,
            images_root=args.images_root,
            images=args.images,  # type: ignore[arg-type]  # click.Choice checked it
            max_pixels=args.max_pixels,
            model_dir=args.model,
            num_crops=args.num_crops,
            max_length=args.max_length,
            lengths_file=args.lengths,
            workers=args.workers,
            progress=progress if args.progress else None,
        )


def _check_manifest_arguments(args: ValidateArgs) -> None:
    from phi3v_data.manifest import CERTIFYING_IMAGE_MODES  # pydantic: only for --write-manifest
    from phi3v_data.paths import IMAGES_DIR

    if not (len(args.paths) == 1 and args.paths[0].is_dir()):
        raise UsageError("--write-manifest needs exactly one PATH, the dataset folder")
    images = args.paths[0] / IMAGES_DIR
    if args.images_root is not None and args.images_root.resolve() != images.resolve():
        raise UsageError(
            f"--write-manifest certifies {images}, where the trainer reads the images: drop --images-root"
        )
    if args.images not in CERTIFYING_IMAGE_MODES:
        raise UsageError(
            "--write-manifest certifies the images too: run it with --images header (the default) or decode, "
            f"not {args.images}"
        )


def _write_manifest(args: ValidateArgs, report: ValidationReport) -> None:
    from phi3v_data.validation.manifest import write_validated_manifest

    if report.exit_code(args.strict):
        click.echo("phi3v-data validate: manifest.json not written: fix the problems above first", err=True)
        return
    path = write_validated_manifest(args.paths[0], report)
    click.echo(f"wrote {path}", err=True)


class _ProgressBar:
    """A progress bar on stderr, over the bytes checked; created on the first update."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._shown = 0

    def __enter__(self) -> _ProgressBar:
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = click.progressbar(length=total, label="validating", file=sys.stderr).__enter__()
        self._bar.update(done - self._shown)
        self._shown = done

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
