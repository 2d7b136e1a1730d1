"""Regenerate the golden outputs of the ``folder`` and ``ucf101`` sources under ``fixtures/golden/``.

Run by a developer after an intended change of the output, then review the diff and commit it:

    /work/venv/bin/python scripts/make_converter_goldens.py

Each ``fixtures/golden/<source>/cases.json`` names cases (an input fixture, command-line options,
the expected exit code). A case's folder holds what ``phi3v-data convert`` wrote, except images:
the JSONL files, ``manifest.json``, and ``images.sha256`` (``sha256sum`` format, sorted by path).
Frames that ``ucf101`` encodes depend on the decoder and JPEG library builds, so their cases also
record ``environment.json``; ``tests/convert/test_convert_golden.py`` compares frame hashes only in
that environment. The tests import this module, so both use the same conversion, and
``scripts/make_dataset_fixtures.py --golden`` writes its sources' goldens with :func:`golden_files`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "fixtures" / "golden"
SOURCES = ("folder", "ucf101")
IMAGE_HASHES = "images.sha256"
ENVIRONMENT = "environment.json"


def load_cases(source: str) -> dict[str, dict]:
    return json.loads((GOLDEN / source / "cases.json").read_text())


def convert_case(source: str, case: dict, out_dir: Path, workers: int = 2) -> int:
    """Run ``phi3v-data convert`` for a case (paths relative to the repository); returns the exit code."""
    from phi3v_data.cli.convert import convert

    args = [source, "--input", str(REPO / case["input"]), "--out", str(out_dir), "--workers", str(workers)]
    return convert.main([*args, *case["args"]], standalone_mode=False)


def golden_files(out_dir: Path) -> dict[str, bytes]:
    """What a golden folder holds for a conversion written to ``out_dir``."""
    files = {path.name: path.read_bytes() for path in sorted(out_dir.glob("*.jsonl"))}
    files["manifest.json"] = (out_dir / "manifest.json").read_bytes()
    files[IMAGE_HASHES] = image_digests(out_dir / "images").encode()
    return files


def image_digests(images_dir: Path) -> str:
    """``sha256  path`` for every file under ``images_dir``, sorted by path (the format of sha256sum)."""
    files = sorted(path for path in images_dir.rglob("*") if path.is_file())
    return "".join(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(images_dir).as_posix()}\n"
        for path in files
    )


def frame_environment() -> dict[str, str]:
    """The library builds that decide the bytes of encoded frames."""
    import av
    import PIL

    return {"av": av.__version__, "ffmpeg": str(av.library_versions["libavcodec"]), "pillow": PIL.__version__}


def main() -> int:
    for source in SOURCES:
        for name, case in load_cases(source).items():
            target = GOLDEN / source / name
            with tempfile.TemporaryDirectory() as scratch:
                out_dir = Path(scratch) / "out"
                code = convert_case(source, case, out_dir)
                if code != case["exit_code"]:
                    print(f"{source}/{name}: exit code {code}, cases.json expects {case['exit_code']}")
                    return 1
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                for file_name, data in golden_files(out_dir).items():
                    (target / file_name).write_bytes(data)
            if source == "ucf101":
                (target / ENVIRONMENT).write_text(json.dumps(frame_environment(), indent=2) + "\n")
            print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
