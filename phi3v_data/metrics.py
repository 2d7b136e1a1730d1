"""Answer metrics for generated answers: exact match and ANLS, pure Python.

Both compare after the Phi-3 cookbook's normalisation (``strip()``, then ``strip('.')``, then
lowercase), so ``" Cat."`` matches ``"cat"``. A record may carry several acceptable answers (DocVQA
lists every annotator's in ``meta``); each metric takes the best over them.

ANLS (Biten et al., 2019, the DocVQA metric) scores ``1 - NL`` where ``NL`` is the Levenshtein
distance divided by the longer string's length, and 0 once ``NL`` reaches the threshold (0.5)::

    >>> anls("helo", ["hello"])
    0.8
    >>> exact_match(" Basketball. ", ["basketball"])
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ANLS_THRESHOLD = 0.5


def normalize_answer(text: str) -> str:
    """The cookbook's answer normalisation: surrounding spaces and periods removed, lowercase."""
    return text.strip().strip(".").lower()


def levenshtein(first: str, second: str) -> int:
    """The edit distance (insertions, deletions, substitutions) between two strings."""
    if len(first) < len(second):
        first, second = second, first
    previous = list(range(len(second) + 1))
    for row, char_a in enumerate(first, start=1):
        current = [row]
        for column, char_b in enumerate(second, start=1):
            current.append(
                min(previous[column] + 1, current[column - 1] + 1, previous[column - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised answer, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(answer) for answer in answers))


def anls(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """The normalised Levenshtein similarity to the closest answer, 0 below the threshold."""
    predicted = normalize_answer(prediction)
    if not predicted:
        # An empty answer scores nothing, even against an answer that normalises to empty.
        return 0.0
    return max((_similarity(predicted, normalize_answer(answer), threshold) for answer in answers), default=0.0)


def mean(scores: Iterable[float]) -> float:
    """The average of per-record scores; 0.0 for none."""
    values = list(scores)
    return sum(values) / len(values) if values else 0.0


def _similarity(predicted: str, answer: str, threshold: float) -> float:
    distance = levenshtein(predicted, answer) / max(len(predicted), len(answer))
    return 1.0 - distance if distance < threshold else 0.0
