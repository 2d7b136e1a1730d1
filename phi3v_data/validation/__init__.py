"""Validating datasets: :func:`validate` returns a :class:`ValidationReport`, never raises for bad data."""

from phi3v_data.validation.image_checks import IMAGES_MODES, ImagesMode
from phi3v_data.validation.report import FileSummary, TokenStats, ValidationReport
from phi3v_data.validation.run import ProgressCallback, validate

__all__ = [
    "IMAGES_MODES",
    "FileSummary",
    "ImagesMode",
    "ProgressCallback",
    "TokenStats",
    "ValidationReport",
    "validate",
]
