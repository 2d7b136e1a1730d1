"""A problem found in the data: collected, never raised."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from phi3v_data.codes import ProblemCode, Severity, severity_of


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, tied to a file and, where it belongs to one, a physical line (1-based)."""

    code: ProblemCode
    message: str
    file: str
    line: int | None = None
    id: str | None = None
    severity: Severity | None = None

    def __post_init__(self) -> None:
        if self.severity is None:
            object.__setattr__(self, "severity", severity_of(self.code))

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
