"""The folder-caching resolver gives exactly the answers of resolve_inside, on trees full of symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phi3v_data.paths import resolve_inside
from phi3v_data.problems import Fault
from phi3v_data.validation.resolver import RootResolver


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """images/ with files, folders, symlinks to files and folders inside and outside it, and a dangling one."""
    base = tmp_path_factory.mktemp("tree")
    root = base / "images"
    (root / "a" / "b").mkdir(parents=True)
    for path in (root / "x.jpg", root / "a" / "y.jpg", root / "a" / "b" / "z.jpg", base / "outside.jpg"):
        path.write_bytes(b"x")
    links = {
        "a/to-x.jpg": "../x.jpg",
        "a/b/up": "..",
        "a/escape.jpg": "../../outside.jpg",
        "a/outer": str(base),
        "loop": "loop",
        "dangling.jpg": "nowhere.jpg",
        "a/b/root": str(root),
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return base


@pytest.fixture(scope="module")
def resolver(tree: Path) -> RootResolver:
    """One resolver for every example, so answers from its folder cache are tested too."""
    return RootResolver((tree / "images").resolve())


segments = st.sampled_from(["a", "b", "x.jpg", "y.jpg", "z.jpg", "up", "to-x.jpg", "escape.jpg", "outer", "loop",
                            "dangling.jpg", "root", "images", "outside.jpg", ".", "", "..", "missing"])  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(segments, min_size=1, max_size=5).map("/".join))
def test_same_answers_as_resolve_inside(resolver: RootResolver, relative: str) -> None:
    expected = resolve_inside(resolver.root, relative)
    found = resolver.resolve(relative)
    if isinstance(expected, Fault):
        assert isinstance(found, Fault) and found.code == expected.code
    else:
        assert found == str(expected)
