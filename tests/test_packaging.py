"""The wheel ships every package of the source tree, under the project's namespace only; the test settings hold."""

import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _source_folder(package: str) -> Path:
    """Where a listed package lives in the checkout, following the package-dir mapping."""
    for mapped, folder in PYPROJECT["package-dir"].items():
        if package == mapped or package.startswith(mapped + "."):
            return ROOT / folder / package[len(mapped) :].lstrip(".").replace(".", "/")
    return ROOT / package.replace(".", "/")


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    listed = set(PYPROJECT["packages"])
    folders = {_source_folder(package).resolve() for package in listed}
    for top in ("phi3v_data", "phi3v_train", "converters"):
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.parent.resolve() in folders, f"{init.parent} is not in [tool.setuptools] packages"


def test_no_bare_generic_top_level_package_is_installed() -> None:
    tops = {package.split(".")[0] for package in PYPROJECT["packages"]}
    assert tops == {"phi3v_data", "phi3v_train"}


def test_listed_packages_exist() -> None:
    for package in PYPROJECT["packages"]:
        assert (_source_folder(package) / "__init__.py").is_file(), package


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
@pytest.mark.parametrize("module", ["phi3v_train.trainer", "phi3v_data.cli", "test_native_model"])
def test_deprecations_raised_from_the_projects_code_fail_the_tests(category, module) -> None:
    with pytest.raises(category):
        warnings.warn_explicit("removed in the next release", category, f"{module}.py", 1, module=module)
