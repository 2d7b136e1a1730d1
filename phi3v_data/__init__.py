"""phi3v-data: the conversations/images JSONL format for Phi-3.5-vision, as code.

The public API::

    from phi3v_data import validate
    report = validate(["data/ucf101"], images="header")
    report.ok, report.errors, [problem.code for problem in report.problems]

Nothing here imports click or torch: linting a dataset needs the base install only.
"""

from typing import TYPE_CHECKING, Any

from phi3v_data import errors
from phi3v_data.format import Record, Turn
from phi3v_data.hd_crop import image_token_count
from phi3v_data.images import ImageInfo, load_image, probe_image
from phi3v_data.jsonl import iter_raw_lines, iter_records
from phi3v_data.problems import Problem
from phi3v_data.validation import ValidationReport, validate

if TYPE_CHECKING:
    from phi3v_data.prompt import PromptBuilder

__all__ = [
    "ImageInfo",
    "Problem",
    "PromptBuilder",
    "Record",
    "Turn",
    "ValidationReport",
    "errors",
    "image_token_count",
    "iter_raw_lines",
    "iter_records",
    "load_image",
    "probe_image",
    "validate",
]


def __getattr__(name: str) -> Any:
    # The prompt builder pulls in the tokenizer and jinja2; a run of `validate` without a model
    # never needs them, so they load on first use.
    if name == "PromptBuilder":
        from phi3v_data.prompt import PromptBuilder

        return PromptBuilder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
