"""``folder`` and ``ucf101`` against their golden outputs, through the ``convert`` command.

The cases are ``fixtures/golden/<source>/cases.json``; ``scripts/make_converter_goldens.py`` wrote
the goldens with the same conversion function this test calls. The manifest's ``validation`` block
is the validator's summary, which grows with the validator, so only its verdict is compared; its
images are compared by path, and their sizes and sha256s with the files written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from convert_doubles import snapshot
from image_source_golden import REPO, assert_manifest_lists_the_images, comparable_manifest, goldens

CASES = [(source, name) for source in goldens.SOURCES for name in goldens.load_cases(source)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """Each case converted once (two workers), with its exit code."""
    outputs: dict[tuple[str, str], tuple[int, Path]] = {}

    def convert(source: str, name: str) -> tuple[int, Path]:
        if (source, name) not in outputs:
            out = tmp_path_factory.mktemp(f"{source}-{name}") / "out"
            outputs[source, name] = goldens.convert_case(source, goldens.load_cases(source)[name], out), out
        return outputs[source, name]

    return convert


@pytest.mark.parametrize(("source", "name"), CASES)
def test_records_and_manifest_equal_the_golden(converted, source: str, name: str) -> None:
    code, out = converted(source, name)
    golden = REPO / "fixtures" / "golden" / source / name
    assert code == goldens.load_cases(source)[name]["exit_code"]
    written = goldens.golden_files(out)
    assert sorted(written) == sorted(path.name for path in golden.iterdir() if path.name != goldens.ENVIRONMENT)
    for file_name in written:
        if file_name.endswith(".jsonl"):
            assert written[file_name] == (golden / file_name).read_bytes(), file_name
    assert comparable_manifest(written["manifest.json"]) == comparable_manifest((golden / "manifest.json").read_bytes())
    assert_manifest_lists_the_images(out)
    validation = json.loads(written["manifest.json"])["validation"]
    assert validation["ok"] is True and validation["records"] == sum(
        entry["records"] for entry in json.loads(written["manifest.json"])["splits"].values()
    )
    assert not (out / ".phi3v-work").exists()


@pytest.mark.parametrize(("source", "name"), CASES)
def test_images_equal_the_golden(converted, source: str, name: str) -> None:
    golden = REPO / "fixtures" / "golden" / source / name
    environment_file = golden / goldens.ENVIRONMENT
    if environment_file.exists():
        recorded = json.loads(environment_file.read_text())
        if recorded != goldens.frame_environment():
            pytest.skip(
                f"golden frames were encoded with {recorded}, this environment has {goldens.frame_environment()}: "
                "other decoder or JPEG builds may write other bytes (determinism is tested separately)"
            )
    _, out = converted(source, name)
    assert goldens.golden_files(out)[goldens.IMAGE_HASHES] == (golden / goldens.IMAGE_HASHES).read_bytes()


@pytest.mark.parametrize(("source", "name"), [("folder", "classes"), ("ucf101", "subset"), ("ucf101", "official")])
def test_one_worker_writes_the_same_bytes_as_two(converted, tmp_path: Path, source: str, name: str) -> None:
    _, two_workers = converted(source, name)
    one_worker = tmp_path / "out"
    goldens.convert_case(source, goldens.load_cases(source)[name], one_worker, workers=1)
    assert snapshot(one_worker) == snapshot(two_workers)
