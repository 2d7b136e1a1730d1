"""Problems found in the data: collected, never raised.

A :class:`Fault` is what a check finds (a code and a message); a :class:`Problem` is a fault tied to
a file and, where it belongs to one, a line and a record id. This module loads neither pydantic nor
Pillow, so a run whose lines all take the validator's fast path never loads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from phi3v_data.codes import ProblemCode, Severity, severity_of


# A named tuple rather than a frozen dataclass: one is built per finding, and they build several times faster.
class Fault(NamedTuple):
    """What a check found: its stable code and a message that names the field and what to do."""

    code: ProblemCode
    message: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, tied to a file and, where it belongs to one, a physical line (1-based)."""

    code: ProblemCode
    message: str
    file: str
    line: int | None = None
    id: str | None = None

    @property
    def severity(self) -> Severity:
        """Always the code's (``CODE_INFO``): a code never changes severity."""
        return severity_of(self.code)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "severity": self.severity}
