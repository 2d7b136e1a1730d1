"""Folding chunk results, in file order, into one report: the checks that span lines and files.

The merger turns chunk-relative line numbers into file line numbers, finds duplicate ids across a
dataset's files (the later line is the error), ignores blank lines at the end of a file, flags
empty files, streams ``--lengths`` lines, and runs the leakage check once a dataset is complete.
"""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass, field
from typing import IO

import orjson

from phi3v_data.problems import Problem
from phi3v_data.validation.inputs import Dataset, InputFile
from phi3v_data.validation.leakage import leak_problems, shared_keys
from phi3v_data.validation.report import FileSummary
from phi3v_data.validation.worker import ChunkResult

# An id's first use is kept as one int: the file's index above these bits, the line below them.
_LINE_BITS = 40


@dataclass(slots=True)
class _FileState:
    file: InputFile
    dataset: int
    lines: int = 0
    last_content_line: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    image_keys: list[array[int]] = field(default_factory=list)


class Merger:
    """Receives every chunk's result in file order; ``finish`` returns the problems and file counts."""

    def __init__(self, datasets: list[Dataset], lengths: IO[bytes] | None = None) -> None:
        self._datasets = datasets
        self._files = [_FileState(file, index) for index, dataset in enumerate(datasets) for file in dataset.files]
        self._ids: list[dict[str, int]] = [{} for _ in datasets]
        self._lengths = lengths
        self.tokens = array("q")
        self.image_references = 0

    def add(self, result: ChunkResult) -> None:
        state = self._files[result.file_index]
        offset = state.lines
        state.problems += [
            dataclasses.replace(problem, line=problem.line + offset) if offset and problem.line else problem
            for problem in result.problems
        ]
        self._check_ids(result, state, offset)
        if self._lengths is not None:
            name = state.file.display_name
            self._lengths.writelines(
                orjson.dumps({"file": name, "line": line + offset, "id": record_id, "tokens": tokens}) + b"\n"
                for line, record_id, tokens in result.lengths
            )
        state.lines += result.line_count
        if result.last_content_line:
            state.last_content_line = offset + result.last_content_line
        state.records += result.records
        if len(result.image_keys):
            state.image_keys.append(result.image_keys)
        self.tokens.extend(result.tokens)
        self.image_references += result.image_references

    def _check_ids(self, result: ChunkResult, state: _FileState, offset: int) -> None:
        first_uses = self._ids[state.dataset]
        base = result.file_index << _LINE_BITS
        for record_id, line in zip(result.ids, result.id_lines):
            here = base | (line + offset)
            first = first_uses.setdefault(record_id, here)
            if first != here:
                where = f"{self._files[first >> _LINE_BITS].file.display_name}:{first & ((1 << _LINE_BITS) - 1)}"
                message = f"id {record_id!r} is already used at {where}; ids must be unique across the dataset"
                state.problems.append(
                    Problem("id-duplicate", message, state.file.display_name, line + offset, record_id)
                )

    def finish(self) -> tuple[list[Problem], list[FileSummary]]:
        """Run the checks that need whole files, then every problem sorted and each file's counts."""
        for index, dataset in enumerate(self._datasets):
            states = [state for state in self._files if state.dataset == index]
            if len(states) > 1 and any(state.image_keys for state in states):
                shared = shared_keys([state.image_keys for state in states])
                if shared:
                    for position, problem in leak_problems(dataset.files, shared):
                        states[position].problems.append(problem)
        problems: list[Problem] = []
        summaries: list[FileSummary] = []
        for state in self._files:
            found = _file_problems(state)
            problems += found
            errors = sum(1 for problem in found if problem.is_error)
            summaries.append(FileSummary(state.file.display_name, state.records, errors, len(found) - errors))
        return problems, summaries


def _file_problems(state: _FileState) -> list[Problem]:
    """The file's problems in line order, without blank lines at its end, with file-empty if it is."""
    found = [
        problem
        for problem in state.problems
        if not (problem.code == "line-blank" and problem.line is not None and problem.line > state.last_content_line)
    ]
    if state.records == 0:
        found.append(
            Problem("file-empty", "the file holds no record; add records or remove the file", state.file.display_name)
        )
    return sorted(found, key=lambda problem: problem.line or 0)
