"""``phi3v-data convert``: sources from entry points, options from models, exit codes, messages."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from phi3v_data.cli.convert import convert, option_params
from phi3v_data.converters.base import ConverterOptions
from phi3v_data.converters.registry import ConverterLoadError, list_sources, load_converter
from phi3v_data.converters.runner import ConversionError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BUILT_IN = ["docvqa", "folder", "hateful-memes", "nlvr2", "ucf101"]


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(convert, list(args))


def test_list_shows_every_built_in_source_with_its_summary() -> None:
    result = run("--list")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.splitlines()]
    assert listed == BUILT_IN
    assert "folder          image classification from <root>/[<split>/]<class>/<images>" in result.output
    assert all(listing.error is None for listing in list_sources())


def test_an_unknown_or_missing_source_is_a_usage_error() -> None:
    unknown = run("imagenet", "--input", "x", "--out", "y")
    assert unknown.exit_code == 2
    assert "unknown source 'imagenet'; the sources are: docvqa, folder, hateful-memes, nlvr2, ucf101" in unknown.output
    assert run().exit_code == 2


def test_a_clean_conversion_exits_0_and_prints_a_summary(tmp_path: Path) -> None:
    result = run(
        "folder", "--input", str(FIXTURES / "folder" / "splits"), "--out", str(tmp_path / "out"), "--workers", "1"
    )
    assert result.exit_code == 0, result.output
    assert (
        "folder: 8 records (train 4, val 2, test 2), 8 images, 0 rejected, 0 ignored, 0 skipped; 8 items converted"
        in result.output
    )
    assert "items/s, 1 worker)" in result.output


def test_rejected_inputs_are_named_on_stderr_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        convert,
        ["folder", "--input", str(FIXTURES / "folder" / "classes"), "--out", str(tmp_path / "out"), "--workers", "2"],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "rejected stray.jpg: not inside a class folder, so it has no label",
        "rejected cat/twin.jpg: has the same name but for the extension as cat/twin.PNG; rename one",
        "rejected dog/truncated.jpg: the header is cut short (Truncated File Read): re-download or re-export it (image-truncated)",
    ]
    assert "3 rejected, 3 ignored" in result.stdout


def test_a_folder_of_the_wrong_layout_exits_2_with_one_sentence_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        convert, ["folder", "--input", str(FIXTURES / "ucf101" / "subset"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: expected images in class folders") and result.stderr.count("\n") == 1
    assert "holds 6 .avi files, 2 .mp4 files" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-frames", "0"], "--num-frames: Input should be greater than or equal to 1"),
        (["--split-id", "4"], "'4' is not one of '1', '2', '3'"),
        (["--classes", "Juggling"], "--classes: Juggling not found; the input has: ApplyEyeMakeup, Basketball"),
        (["--split-id", "2"], "--split-id applies to the official layout"),
        (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
        (["--workers", "0"], "0 is not in the range x>=1"),
    ],
)
def test_bad_options_exit_2_naming_the_option(tmp_path: Path, args: list[str], message: str) -> None:
    result = run("ucf101", "--input", str(FIXTURES / "ucf101" / "subset"), "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_a_conversion_that_cannot_finish_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def worker_died(*args, **kwargs):
        raise ConversionError("a worker process died (out of memory?)")

    monkeypatch.setattr("phi3v_data.cli.convert.run_conversion", worker_died)
    result = run("folder", "--input", str(FIXTURES / "folder" / "splits"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 3 and "Error: a worker process died" in result.output


class EveryKind(ConverterOptions):
    flag: bool = False
    """A switch."""
    mode: Literal["fast", "exact"] = "exact"
    number: Literal[1, 2] = 1
    names: tuple[str, ...] = ()
    limit: int | None = None
    ratio: float = 0.5


def test_each_option_field_becomes_a_typed_kebab_case_flag() -> None:
    @click.command(params=option_params(EveryKind))
    def echo(**values):
        click.echo(repr(EveryKind.model_validate(values)))

    result = CliRunner().invoke(
        echo,
        [
            "--flag",
            "--mode",
            "fast",
            "--number",
            "2",
            "--names",
            "a,b",
            "--names",
            "c",
            "--limit",
            "3",
            "--ratio",
            "0.25",
        ],
    )
    assert (
        result.output.strip()
        == "EveryKind(flag=True, mode='fast', number=2, names=('a', 'b', 'c'), limit=3, ratio=0.25)"
    )
    defaults = CliRunner().invoke(echo, [])
    assert defaults.output.strip() == "EveryKind(flag=False, mode='exact', number=1, names=(), limit=None, ratio=0.5)"
    assert "A switch." in CliRunner().invoke(echo, ["--help"]).output


def test_an_option_named_like_a_common_one_is_refused() -> None:
    class Clashing(ConverterOptions):
        workers: int = 1

    with pytest.raises(ConverterLoadError, match="'workers' clashes with a common option"):
        option_params(Clashing)


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_plugin() -> str:
    """The plugin example of the README, so the documented code is the code that is tested."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\n# shapes_plugin.py\n") + len("```python\n")
    return text[start : text.index("```", start)]


def install_plugin(site: Path, name: str, target: str) -> None:
    """A distribution as pip would install it: a dist-info folder with its entry points."""
    dist_info = site / f"{name}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[phi3v_data.converters]\n{target}\n")


def test_a_third_party_source_registered_by_entry_point_converts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "shapes_plugin.py").write_text(readme_plugin())
    install_plugin(site, "shapes_plugin", "shapes = shapes_plugin:ShapesConverter")
    monkeypatch.syspath_prepend(str(site))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "square.png").write_bytes((FIXTURES / "folder" / "splits" / "train" / "dog" / "c.png").read_bytes())

    assert "shapes          PNG shapes, one record each" in run("--list").output
    assert "What the assistant says." in run("shapes", "--help").output
    result = run("shapes", "--input", str(raw), "--out", str(tmp_path / "out"), "--answer", "a square it is")
    assert result.exit_code == 0, result.output
    assert '"assistant":"a square it is"' in (tmp_path / "out" / "shapes_train.jsonl").read_text()


def test_a_broken_plugin_is_listed_with_its_error_and_the_others_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_plugin.py").write_text("import a_module_that_is_not_installed\n")
    install_plugin(site, "broken_plugin", "broken = broken_plugin:Converter")
    monkeypatch.syspath_prepend(str(site))

    listing = run("--list")
    assert listing.exit_code == 0
    assert (
        "broken          cannot be loaded: the 'broken' source (broken_plugin:Converter) cannot be loaded: ModuleNotFoundError"
        in listing.output
    )
    assert "ucf101" in listing.output
    used = run("broken", "--input", "x", "--out", "y")
    assert used.exit_code == 2 and "No module named 'a_module_that_is_not_installed'" in used.output
    with pytest.raises(ConverterLoadError):
        load_converter("broken")
