"""Rendering a :class:`ValidationReport` for people and for CI systems.

Each reporter turns a report into the text of one output format; ``REPORTER_BY_NAME`` maps the
``--format`` choices to them. Reporters only present: what counts as a failure is decided by the
report (and ``strict``, which makes warnings fail).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from typing import Protocol

from phi3v_data.hd_crop import default_num_crops_reason
from phi3v_data.problems import Problem
from phi3v_data.validation.report import ValidationReport

# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Reporter(Protocol):
    """Renders a report as one output format."""

    def render(self, report: ValidationReport, *, strict: bool = False) -> str: ...


def location(problem: Problem) -> str:
    """``file:line`` (or just the file, for a problem of the whole file)."""
    return problem.file if problem.line is None else f"{problem.file}:{problem.line}"


def summary_line(report: ValidationReport) -> str:
    """One sentence: what was checked and what was found."""
    files = f"{len(report.files)} file{'s' if len(report.files) != 1 else ''}"
    found = f"{_count(report.errors, 'error')}, {_count(report.warnings, 'warning')}"
    return f"{files}, {_count(report.records, 'record')}: {found}"


def tokens_line(report: ValidationReport) -> str | None:
    """The token statistics as one sentence, when tokens were counted."""
    stats = report.tokens
    if stats is None:
        return None
    what = "tokens per record" if stats.kind == "sequence" else "image tokens per record"
    return (
        f"{what} ({_count(stats.count, 'record')}){_num_crops_phrase(report)}: min {stats.min:,}, "
        f"median {stats.median:,}, p95 {stats.p95:,}, max {stats.max:,}"
    )


def _num_crops_phrase(report: ValidationReport) -> str:
    """`` at num_crops N (why)``: what the image tokens were counted at, when the report says."""
    num_crops = report.options.get("num_crops")
    if num_crops is None:
        return ""
    why = "as given" if report.options.get("num_crops_given", True) else default_num_crops_reason(num_crops)
    return f" at num_crops {num_crops} ({why})"


class TextReporter:
    """``file:line: code message`` lines, then a summary. One problem is always one line."""

    def render(self, report: ValidationReport, *, strict: bool = False) -> str:
        lines = [f"{location(problem)}: {problem.code} {_printable(problem.message)}" for problem in report.problems]
        lines.append(summary_line(report))
        tokens = tokens_line(report)
        if tokens:
            lines.append(tokens)
        return "\n".join(lines) + "\n"


class JsonReporter:
    """The report as one JSON document (:meth:`ValidationReport.to_dict`)."""

    def render(self, report: ValidationReport, *, strict: bool = False) -> str:
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


class GithubReporter:
    """GitHub Actions workflow commands: each problem becomes an annotation on its file and line."""

    def render(self, report: ValidationReport, *, strict: bool = False) -> str:
        lines = []
        for problem in report.problems:
            properties = f"file={_github_property(problem.file)}"
            if problem.line is not None:
                properties += f",line={problem.line}"
            properties += f",title={_github_property(problem.code)}"
            lines.append(f"::{problem.severity} {properties}::{_github_data(problem.message)}")
        lines.append(summary_line(report))
        return "\n".join(lines) + "\n"


class JunitReporter:
    """JUnit XML: a test suite per file, a failing test case per error (per warning too, if strict)."""

    def render(self, report: ValidationReport, *, strict: bool = False) -> str:
        by_file: dict[str, list[Problem]] = defaultdict(list)
        for problem in report.problems:
            by_file[problem.file].append(problem)
        root = ElementTree.Element("testsuites", name="phi3v-data validate")
        total = failed = 0
        for summary in report.files:
            suite = ElementTree.SubElement(root, "testsuite", name=_xml(summary.file))
            cases = failures = 0
            for problem in by_file.get(summary.file, []):
                case = ElementTree.SubElement(
                    suite, "testcase", classname=_xml(problem.file), name=_xml(f"{location(problem)} {problem.code}")
                )
                cases += 1
                if problem.is_error or strict:
                    failures += 1
                    failure = ElementTree.SubElement(case, "failure", type=problem.code, message=_xml(problem.message))
                    failure.text = _xml(f"{location(problem)}: {problem.severity}: {problem.message}")
                else:
                    ElementTree.SubElement(case, "system-out").text = _xml(f"warning: {problem.message}")
            if cases == 0:
                ElementTree.SubElement(
                    suite, "testcase", classname=_xml(summary.file), name=f"{summary.records} records"
                )
                cases = 1
            suite.set("tests", str(cases))
            suite.set("failures", str(failures))
            suite.set("errors", "0")
            total, failed = total + cases, failed + failures
        root.set("tests", str(total))
        root.set("failures", str(failed))
        root.set("errors", "0")
        ElementTree.indent(root)
        return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


REPORTER_BY_NAME: dict[str, Reporter] = {
    "text": TextReporter(),
    "json": JsonReporter(),
    "github": GithubReporter(),
    "junit": JunitReporter(),
}


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _printable(text: str) -> str:
    # Line breaks and terminal escapes in a message (a Pillow error, say) are shown escaped.
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in text)


def _github_data(text: str) -> str:
    # The escapes of GitHub's workflow-command format (toolkit/core's escapeData).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
