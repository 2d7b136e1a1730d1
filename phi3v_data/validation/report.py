"""The result of a validation: every problem found, per-file counts and token statistics.

Nothing here raises for bad data: a validation always returns a :class:`ValidationReport`, and
``exit_code`` turns it into the command's status. ``to_dict`` is plain JSON (the ``--format json``
document, and what converters store in their manifest).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from phi3v_data.problems import Problem


@dataclass(frozen=True, slots=True)
class FileSummary:
    """The counts of one JSONL file."""

    file: str
    records: int
    errors: int
    warnings: int


@dataclass(frozen=True, slots=True)
class TokenStats:
    """Tokens per record over the records that could be counted (nearest-rank percentiles).

    ``kind`` is ``"sequence"`` with a model (every token the trainer feeds) and ``"image"`` without
    one (the image tokens alone, from the header sizes).
    """

    kind: Literal["sequence", "image"]
    count: int
    min: int
    median: int
    p95: int
    max: int

    @classmethod
    def from_counts(cls, kind: Literal["sequence", "image"], counts: Sequence[int]) -> TokenStats | None:
        """Statistics of a non-empty sequence of counts (None for an empty one)."""
        if not counts:
            return None
        # Plain sorted(): a million counts sort in about the time importing numpy takes.
        ordered = sorted(counts)
        size = len(ordered)

        def rank(quantile: float) -> int:
            return ordered[max(0, math.ceil(quantile * size) - 1)]

        return cls(kind, size, ordered[0], rank(0.5), rank(0.95), ordered[-1])


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Everything a validation found. Problems are sorted by file (in input order), then line."""

    problems: tuple[Problem, ...]
    files: tuple[FileSummary, ...]
    options: dict[str, Any]
    image_references: int = 0
    """How many image paths the schema-valid records name (an image used twice counts twice)."""
    tokens: TokenStats | None = None

    @property
    def records(self) -> int:
        """Non-blank lines read, valid or not."""
        return sum(summary.records for summary in self.files)

    @property
    def errors(self) -> int:
        return sum(1 for problem in self.problems if problem.is_error)

    @property
    def warnings(self) -> int:
        return len(self.problems) - self.errors

    @property
    def ok(self) -> bool:
        """True when no problem is an error (warnings allowed)."""
        return self.errors == 0

    def exit_code(self, strict: bool = False) -> int:
        """0 when clean, 1 when there are errors (or, with ``strict``, warnings)."""
        return 1 if self.errors or (strict and self.warnings) else 0

    def counts_by_code(self) -> dict[str, int]:
        """How many problems of each code, in code order."""
        return dict(sorted(Counter(problem.code for problem in self.problems).items()))

    def summary(self) -> dict[str, Any]:
        """Everything but the list of problems: small enough to keep in a dataset's manifest."""
        from phi3v_data.format import FORMAT_VERSION  # here: the format module loads pydantic

        return {
            "ok": self.ok,
            "records": self.records,
            "errors": self.errors,
            "warnings": self.warnings,
            "counts": self.counts_by_code(),
            "files": [asdict(summary) for summary in self.files],
            "image_references": self.image_references,
            "tokens": asdict(self.tokens) if self.tokens else None,
            "options": self.options,
            "format_version": FORMAT_VERSION,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole report as plain JSON types (``--format json``)."""
        rest = self.summary()
        head = {key: rest.pop(key) for key in ("ok", "records", "errors", "warnings")}
        return {**head, "problems": [problem.to_dict() for problem in self.problems], **rest}
