"""Exceptions for usage errors and bugs.

Problems *in the data* are never raised: they are collected as :class:`phi3v_data.problems.Problem`
objects. Exceptions are for things that stop a command: a path that does not exist, a folder that is
not the expected layout, a model folder without tokenizer files. Every one derives from
:class:`Phi3vDataError` and from the matching built-in, so callers may catch either.
"""

from __future__ import annotations


class Phi3vDataError(Exception):
    """Root of every exception this project raises on purpose."""


class UsageError(Phi3vDataError, ValueError):
    """The command or call was given options that cannot work together."""


class FileNotFoundPhi3vDataError(Phi3vDataError, FileNotFoundError):
    """An input file or folder named by the user does not exist."""


class InputLayoutError(Phi3vDataError, ValueError):
    """An input folder exists but is not the layout the command expects."""


class ModelFilesError(Phi3vDataError, FileNotFoundError):
    """A model folder lacks the tokenizer or configuration files a token count needs."""


class UnvalidatedDatasetError(Phi3vDataError, ValueError):
    """A dataset's manifest is missing or does not match its JSONL files."""


class UnreadableInputError(Phi3vDataError, OSError):
    """An input file exists but cannot be read (permissions, a device error)."""
