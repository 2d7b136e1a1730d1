"""Image path rules: relative, POSIX, no '..', and inside the images root once symlinks are followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phi3v_data.paths import path_fault, resolve_inside
from phi3v_data.problems import Fault


@pytest.mark.parametrize(
    ("relative", "code"),
    [
        ("a\\b.jpg", "image-path-backslash"),
        ("/etc/passwd", "image-path-absolute"),
        ("C:/x.jpg", "image-path-absolute"),
        ("../x.jpg", "image-path-parent"),
        ("a/../../x.jpg", "image-path-parent"),
    ],
)
def test_paths_that_break_a_rule(relative: str, code: str) -> None:
    fault = path_fault(relative)
    assert fault is not None and fault.code == code


@pytest.mark.parametrize("relative", ["a.jpg", "val/Class/v_1.0.jpg", "a..b.jpg", "./a.jpg", "dots../x.jpg"])
def test_paths_that_follow_the_rules(relative: str) -> None:
    assert path_fault(relative) is None


def test_symlinks_inside_the_root_resolve_and_escapes_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "real.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    os.symlink("../real.jpg", root / "sub" / "alias.jpg")
    os.symlink("../secret.jpg", root / "escape.jpg")
    os.symlink(tmp_path, root / "up")
    resolved_root = root.resolve()
    assert resolve_inside(resolved_root, "sub/alias.jpg") == resolved_root / "real.jpg"
    for relative in ("escape.jpg", "up/secret.jpg"):
        fault = resolve_inside(resolved_root, relative)
        assert isinstance(fault, Fault) and fault.code == "image-path-outside-root"
