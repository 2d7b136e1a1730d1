"""Exact match and ANLS on known values (the cookbook's normalisation, the DocVQA definition)."""

import pytest

from phi3v_data.metrics import anls, exact_match, levenshtein, mean, normalize_answer


@pytest.mark.parametrize(
    ("first", "second", "distance"),
    [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2), ("same", "same", 0), ("ab", "ba", 2)],
)
def test_levenshtein_known_distances(first, second, distance):
    assert levenshtein(first, second) == distance
    assert levenshtein(second, first) == distance


def test_normalisation_strips_spaces_then_periods_then_lowercases():
    assert normalize_answer("  Basketball.  ") == "basketball"
    assert normalize_answer("...U.S.A...") == "u.s.a"
    # strip() runs before strip('.'): a space inside the periods stays.
    assert normalize_answer(". Cat .") == " cat "


def test_exact_match_uses_the_normalisation_and_any_answer():
    assert exact_match(" ApplyEyeMakeup.", ["applyeyemakeup"]) == 1.0
    assert exact_match("Basketball", ["ApplyEyeMakeup"]) == 0.0
    assert exact_match("1982", ["nineteen eighty-two", "1982"]) == 1.0
    assert exact_match("anything", []) == 0.0


def test_anls_known_values():
    assert anls("hello", ["hello"]) == 1.0
    assert anls("helo", ["hello"]) == pytest.approx(0.8)  # 1 edit over 5 characters
    assert anls("Hello.", ["hello"]) == 1.0  # normalised first
    assert anls("abc", ["abd"]) == pytest.approx(2 / 3)


def test_anls_is_zero_at_and_beyond_the_threshold():
    assert anls("abcd", ["abef"]) == 0.0  # NL = 2/4 = 0.5, not below 0.5
    assert anls("abcde", ["abcxy"]) == pytest.approx(0.6)  # NL = 2/5 = 0.4, below the threshold
    assert anls("abcde", ["abcxy"], threshold=0.4) == 0.0


def test_anls_takes_the_best_answer_and_scores_empty_predictions_zero():
    assert anls("cat", ["dog", "cats", "cat"]) == 1.0
    assert anls("cat", ["dog", "cats"]) == pytest.approx(0.75)
    assert anls("", ["cat"]) == 0.0
    assert anls(" . ", ["cat"]) == 0.0
    assert anls("cat", []) == 0.0


def test_mean_of_scores():
    assert mean([1.0, 0.0, 0.5]) == pytest.approx(0.5)
    assert mean([]) == 0.0
