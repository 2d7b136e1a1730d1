"""Image token counts of Phi-3.5-vision's HD transform, from an image's size alone.

The real processor (``processing_phi3_v.py``) resizes each image onto a grid of 336-pixel crops whose
shape follows the aspect ratio and ``num_crops``; each crop becomes 144 tokens, plus a global view,
row separators and a separator between the two. The count depends on the aspect ratio and
``num_crops`` only, never on the resolution::

    >>> image_token_count(320, 240, num_crops=4)
    757
    >>> image_token_count(500, 500, num_crops=16)
    2509
"""

from __future__ import annotations

import math
from collections.abc import Iterable

CROP_SIZE = 336
TOKENS_PER_CROP = 144
TOKENS_PER_ROW_SEPARATOR = 12
MAX_NUM_CROPS = 16
# Phi-3.5-vision's preprocessor_config.json (Phi-3-vision ships 16): the processor's own default.
DEFAULT_NUM_CROPS = 4
# The cookbook's choices, which `phi3v-data validate` and `phi3v-train` both default to (default_num_crops).
MULTI_IMAGE_NUM_CROPS = 4
SINGLE_IMAGE_NUM_CROPS = 16


def hd_resize_size(width: int, height: int, num_crops: int) -> tuple[int, int]:
    """The size a landscape image (``width >= height``) is resized to before its height is padded.

    A portrait image is transposed first, resized and padded, and transposed back.
    """
    if not 1 <= num_crops <= MAX_NUM_CROPS:
        raise ValueError(f"num_crops must be between 1 and {MAX_NUM_CROPS}, got {num_crops}")
    ratio = width / height
    scale = 1
    while scale * math.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_width = scale * CROP_SIZE
    return new_width, int(new_width / ratio)


def crop_grid(width: int, height: int, num_crops: int) -> tuple[int, int]:
    """Columns and rows of 336-pixel crops the HD transform gives an image of this size."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    transposed = width < height
    if transposed:
        width, height = height, width
    new_width, new_height = hd_resize_size(width, height, num_crops)
    padded_height = math.ceil(new_height / CROP_SIZE) * CROP_SIZE
    columns, rows = new_width // CROP_SIZE, padded_height // CROP_SIZE
    return (rows, columns) if transposed else (columns, rows)


def image_token_count(width: int, height: int, num_crops: int) -> int:
    """Tokens one image of this (displayed) size expands to in the model's input."""
    columns, rows = crop_grid(width, height, num_crops)
    return (rows * columns + 1) * TOKENS_PER_CROP + 1 + (rows + 1) * TOKENS_PER_ROW_SEPARATOR


def default_num_crops(images_per_record: Iterable[int]) -> int:
    """The num_crops used when none is given: 4 when any record holds several images (video frames,
    the cookbook's choice), else 16. The validator and the trainer both count with it, so a length
    certified by ``phi3v-data validate`` is the length trained. Stops at the first record with several.
    """
    several = any(count > 1 for count in images_per_record)
    return MULTI_IMAGE_NUM_CROPS if several else SINGLE_IMAGE_NUM_CROPS


def default_num_crops_reason(num_crops: int) -> str:
    """Why the rule of :func:`default_num_crops` chose ``num_crops``, for reports."""
    if num_crops == MULTI_IMAGE_NUM_CROPS:
        return "the default: records hold several images"
    return "the default: no record holds several images"
