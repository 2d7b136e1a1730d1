"""The fault: one problem found in a line, before it is tied to a file and line number.

Its own module, free of pydantic, so that a run whose lines all take the fast path never loads it.
"""

from __future__ import annotations

from typing import NamedTuple

from phi3v_data.codes import ProblemCode


# A named tuple rather than a frozen dataclass: one is built per problem, and they build several times faster.
class Fault(NamedTuple):
    """A problem found in one line: its code and a message that names the field and what to do."""

    code: ProblemCode
    message: str
