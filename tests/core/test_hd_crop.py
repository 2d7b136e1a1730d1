"""HD-crop token counts match the real processor's known values."""

import pytest

from phi3v_data.hd_crop import crop_grid, image_token_count


@pytest.mark.parametrize(
    ("width", "height", "num_crops", "tokens"),
    [(320, 240, 1, 313), (320, 240, 4, 757), (320, 240, 16, 1921), (500, 500, 16, 2509), (7, 7, 16, 2509)],
)
def test_known_counts(width: int, height: int, num_crops: int, tokens: int) -> None:
    assert image_token_count(width, height, num_crops) == tokens


def test_count_follows_the_aspect_ratio_not_the_resolution() -> None:
    assert image_token_count(320, 240, 4) == image_token_count(3200, 2400, 4)


def test_portrait_is_the_transposed_grid_of_landscape() -> None:
    assert crop_grid(240, 320, 16) == tuple(reversed(crop_grid(320, 240, 16)))


def test_counts_match_the_closed_formula() -> None:
    # 144 per crop, 12 per row separator, a global view and a separator: 144*h*w + 12*h + 157.
    for width, height in [(1000, 100), (100, 1000), (333, 777), (1, 1)]:
        columns, rows = crop_grid(width, height, 16)
        assert columns * rows <= 16
        assert image_token_count(width, height, 16) == 144 * rows * columns + 12 * rows + 157


@pytest.mark.parametrize(("width", "height", "num_crops"), [(0, 10, 4), (10, -1, 4), (10, 10, 0), (10, 10, 17)])
def test_impossible_sizes_and_crop_counts_are_refused(width: int, height: int, num_crops: int) -> None:
    with pytest.raises(ValueError):
        image_token_count(width, height, num_crops)


def test_the_default_num_crops_is_4_once_any_record_holds_several_images_else_16() -> None:
    from phi3v_data.hd_crop import default_num_crops

    assert default_num_crops([1, 0, 1]) == 16
    assert default_num_crops([]) == 16
    assert default_num_crops([1, 0, 8, 1]) == 4

    def counts():  # stops at the first record with several images: a video set is decided at once
        yield 2
        raise AssertionError("read past the first multi-image record")

    assert default_num_crops(counts()) == 4
