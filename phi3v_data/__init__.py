"""phi3v-data: the conversations/images JSONL format for Phi-3.5-vision, as code.

The public API::

    from phi3v_data import validate
    report = validate(["data/ucf101"], images="header")
    report.ok, report.errors, [problem.code for problem in report.problems]

Nothing here imports click or torch: linting a dataset needs the base install only.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phi3v_data import errors
    from phi3v_data.format import Record, Turn
    from phi3v_data.hd_crop import image_token_count
    from phi3v_data.images import ImageInfo, load_image, probe_image
    from phi3v_data.jsonl import iter_raw_lines, iter_records
    from phi3v_data.problems import Problem
    from phi3v_data.prompt import PromptBuilder
    from phi3v_data.validation import ValidationReport, validate

# Where each public name lives. They load on first use: `phi3v-data validate` on plain lines never
# needs pydantic (a tenth of a second of start-up), and without a model never the tokenizer or jinja2.
_HOMES = {
    "ImageInfo": "phi3v_data.images",
    "Problem": "phi3v_data.problems",
    "PromptBuilder": "phi3v_data.prompt",
    "Record": "phi3v_data.format",
    "Turn": "phi3v_data.format",
    "ValidationReport": "phi3v_data.validation",
    "image_token_count": "phi3v_data.hd_crop",
    "iter_raw_lines": "phi3v_data.jsonl",
    "iter_records": "phi3v_data.jsonl",
    "load_image": "phi3v_data.images",
    "probe_image": "phi3v_data.images",
    "validate": "phi3v_data.validation",
}

__all__ = sorted([*_HOMES, "errors"])


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("phi3v_data.errors")
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
