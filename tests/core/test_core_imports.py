"""The core installs and runs without the CLI or training stacks: no click, no torch."""

import subprocess
import sys

CHECK = """
import sys
import phi3v_data, phi3v_data.validation, phi3v_data.reporters, phi3v_data.manifest
from phi3v_data import validate, PromptBuilder, iter_records, probe_image, load_image
heavy = sorted(name for name in ("click", "torch", "transformers", "av", "cv2") if name in sys.modules)
assert not heavy, heavy
"""


def test_the_core_imports_neither_click_nor_torch() -> None:
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
