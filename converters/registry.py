"""Finding sources: every converter registered under the entry-point group ``phi3v_data.converters``.

Built-in sources register in this project's ``pyproject.toml`` exactly as third-party packages do,
so ``phi3v-data convert --list`` shows both. A source is loaded only when it is used or listed, and
one that fails to import (a missing optional dependency, a broken plugin) is reported with the
reason instead of breaking the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from phi3v_data.converters.base import ENTRY_POINT_GROUP, Converter, ConverterOptions
from phi3v_data.errors import Phi3vDataError, UsageError

_REQUIRED_METHODS = ("plan", "convert_item")


class ConverterLoadError(Phi3vDataError, ImportError):
    """A registered source cannot be imported or does not implement the Converter protocol."""


@dataclass(frozen=True, slots=True)
class SourceListing:
    """One line of ``phi3v-data convert --list``: the source and its summary, or why it cannot load."""

    name: str
    summary: str | None
    error: str | None = None


def source_names() -> list[str]:
    """The registered sources, sorted."""
    return sorted(_entry_points())


def load_converter(name: str) -> Converter:
    """An instance of the source's converter; :class:`UsageError` for an unknown name."""
    found = _entry_points()
    if name not in found:
        available = ", ".join(sorted(found)) or "none"
        raise UsageError(f"unknown source {name!r}; the sources are: {available} (see `phi3v-data convert --list`)")
    return _load(found[name])


def list_sources() -> list[SourceListing]:
    """Every registered source with its summary; a source that cannot load carries the reason."""
    listings = []
    for name in source_names():
        try:
            listings.append(SourceListing(name, load_converter(name).summary))
        except ConverterLoadError as error:
            listings.append(SourceListing(name, None, str(error)))
    return listings


def _entry_points() -> dict[str, EntryPoint]:
    # The first registration of a name wins, as importlib.metadata's own lookup does.
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def _load(entry_point: EntryPoint) -> Converter:
    where = f"the {entry_point.name!r} source ({entry_point.value})"
    try:
        converter_class = entry_point.load()
        converter = converter_class()
    except Exception as error:  # any failure of third-party code is reported, not raised through
        raise ConverterLoadError(f"{where} cannot be loaded: {type(error).__name__}: {error}") from error
    missing = [attribute for attribute in ("name", "summary", "Options") if not hasattr(converter, attribute)]
    missing += [method for method in _REQUIRED_METHODS if not callable(getattr(converter, method, None))]
    if missing:
        raise ConverterLoadError(f"{where} does not implement the Converter protocol: it lacks {', '.join(missing)}")
    if not (isinstance(converter.Options, type) and issubclass(converter.Options, ConverterOptions)):
        raise ConverterLoadError(f"{where}: its Options must subclass phi3v_data.converters.base.ConverterOptions")
    return converter
