"""NLVR2 (Suhr et al. 2019): is a sentence true about a pair of photographs?

The raw folder holds the annotation files of github.com/lil-lab/nlvr (``train.json``, ``dev.json``,
``test1.json``, optionally ``test2.json``; at the top or in ``data/``) and the images as shipped:
``images/train/<directory>/``, ``dev/``, ``test1/``, ``test2/`` (each also accepted under ``images/``).
One line of ``train.json`` (JSON lines; some fields left out)::

    {"identifier": "train-10171-0-0", "directory": 71, "sentence": "Both images show a pencil case.",
     "label": "False", "left_url": "https://...", "right_url": "https://..."}

becomes one line of ``nlvr2_train.jsonl``, the left image first::

    {"id": "train-10171-0-0", "source": "nlvr2",
     "conversations": [{"images": ["train/71/train-10171-0-img0.png", "train/71/train-10171-0-img1.jpg"],
                        "user": "Is this statement true or false about the two images?
                                 \\"Both images show a pencil case.\\" Answer True or False.",
                        "assistant": "False"}]}

(the user text is one line; it is wrapped here)

The images of identifier ``split-set-pair-sentence`` are ``split-set-pair-img0.png`` and ``-img1.png``.
One item is one image pair and writes its two images once, for all the sentences written about it.
Some ``.png`` files hold JPEG bytes (the NLVR2 README says so): the bytes are copied unchanged and the
written file is named ``.jpg``, as ``img1`` above. The URLs in the annotations are never fetched: a
missing image rejects its pair. dev becomes ``val``; test1 and test2 both become ``test`` (the ids keep
the file apart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from pydantic import field_validator

from phi3v_data.converters._images import UnusableImage, copy_image
from phi3v_data.converters._inputs import FolderListing, PlanBuilder, list_folder, read_json_lines
from phi3v_data.converters.base import ConverterOptions, Item, ItemResult, Plan
from phi3v_data.converters.prompts import require_slot
from phi3v_data.errors import InputLayoutError

DEFAULT_PROMPT = 'Is this statement true or false about the two images? "{sentence}" Answer True or False.'

# Annotation files in split order: file, split, image folder.
_ANNOTATIONS = (
    ("train.json", "train", "train"),
    ("dev.json", "val", "dev"),
    ("test1.json", "test", "test1"),
    ("test2.json", "test", "test2"),
)
_ANNOTATION_FOLDERS = ("", "data")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+-\d+-\d+-\d+$")
_LABELS = {"true": "True", "false": "False"}


class NLVR2Options(ConverterOptions):
    prompt: str = DEFAULT_PROMPT
    """The user text, after the two images; {sentence} is replaced by the sentence to judge."""

    @field_validator("prompt")
    @classmethod
    def _has_sentence_slot(cls, prompt: str) -> str:
        return require_slot(prompt, "sentence", "the sentence to judge")


@dataclass(slots=True)
class _Pair:
    """An image pair and the labelled sentences written about it."""

    stem: str
    """The identifier without its sentence number, e.g. ``train-10171-0``."""
    directory: str | None
    """The numbered folder of images/train/ that holds it (train only)."""
    sentences: list[dict[str, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The left and right image file names."""
        return [f"{self.stem}-img0.png", f"{self.stem}-img1.png"]

    def candidates(self, root: str, name: str) -> list[str]:
        """Where an image of the pair may be, most expected first."""
        flat = f"{root}/{name}"
        return [f"{root}/{self.directory}/{name}", flat] if self.directory is not None else [flat]


class NLVR2Converter:
    """NLVR2: is a sentence true about a left and a right photograph? Answered True or False."""

    name: ClassVar[str] = "nlvr2"
    summary: ClassVar[str] = (
        "NLVR2 sentence/image-pair pairs: train.json, dev.json, test1.json with their image folders"
    )
    Options: ClassVar[type[ConverterOptions]] = NLVR2Options

    def plan(self, input_dir: Path, options: NLVR2Options) -> Plan:
        listing = list_folder(input_dir)
        annotations = _find_annotations(listing)
        if not annotations:
            raise InputLayoutError(
                f"{input_dir} is not an NLVR2 folder: expected train.json, dev.json or test1.json (at the top or "
                f"in data/) with the images in images/train/, dev/ and test1/, but it holds {listing.describe()}"
            )
        builder = PlanBuilder()
        used = {path for path, _, _ in annotations}
        for annotation, split, image_folder in annotations:
            pairs = _read_pairs(input_dir / annotation, annotation, image_folder, builder)
            candidates = (f"images/{image_folder}", image_folder)
            root = next((folder for folder in candidates if folder in listing.folders), candidates[0])
            located = [(pair, *_locate(listing, root, pair)) for pair in pairs]
            if pairs and not any(sources for _, sources, _ in located):
                raise InputLayoutError(
                    f"none of the images that {annotation} names (e.g. {pairs[0].names[0]}) is in {candidates[0]}/ "
                    f"or {candidates[1]}/: expected the NLVR2 images there, as downloaded"
                )
            for pair, sources, missing in located:
                needed_by = ", ".join(sentence["identifier"] for sentence in pair.sentences)
                for path in missing:
                    builder.reject(path, f"no such file; needed by {needed_by} in {annotation}")
                if missing:
                    continue
                used.update(sources)
                images = [
                    [source, f"{split}/{PurePosixPath(source).relative_to(root).with_suffix('')}"] for source in sources
                ]
                builder.add(split, pair.stem, {"images": images, "sentences": pair.sentences})
        return builder.finish(listing, used)

    def convert_item(self, item: Item, input_dir: Path, options: NLVR2Options) -> ItemResult:
        images = [copy_image(input_dir, source, target) for source, target in item.payload["images"]]
        for image in images:
            if isinstance(image, UnusableImage):
                return ItemResult.rejected(str(image))
        paths = [image.relative_path for image in images]
        records = [
            {
                "id": sentence["identifier"],
                "source": self.name,
                "conversations": [
                    {
                        "images": paths,
                        "user": options.prompt.replace("{sentence}", sentence["sentence"]),
                        "assistant": sentence["label"],
                    }
                ],
            }
            for sentence in item.payload["sentences"]
        ]
        return ItemResult(records=records, images=images)


def _find_annotations(listing: FolderListing) -> list[tuple[str, str, str]]:
    """``(path, split, image folder)`` of each annotation file, from the first folder that has any."""
    for folder in _ANNOTATION_FOLDERS:
        paths = [
            (f"{folder}/{name}" if folder else name, split, image_folder) for name, split, image_folder in _ANNOTATIONS
        ]
        found = [annotation for annotation in paths if annotation[0] in listing.files]
        if found:
            return found
    return []


def _read_pairs(path: Path, annotation: str, prefix: str, builder: PlanBuilder) -> list[_Pair]:
    """The labelled sentences of one file grouped by image pair, in order of first appearance.

    Broken lines are rejected; lines without a label are skipped as ``unlabelled``.
    """
    with path.open("rb") as file:
        if file.read(4096).lstrip().startswith(b"["):
            raise InputLayoutError(
                f"{path} is one JSON array: expected the original NLVR2 file from github.com/lil-lab/nlvr, "
                "one JSON object per line, not a re-packaged copy"
            )
    pairs: dict[str, _Pair] = {}
    seen: dict[str, str] = {}
    for line in read_json_lines(path):
        where = f"{annotation}:{line.number}"
        sentence = _parse_sentence(line.row, prefix) if line.row is not None else line.error
        if isinstance(sentence, str):
            builder.reject(where, sentence)
            continue
        identifier = sentence["identifier"]
        if identifier in seen:
            builder.reject(where, f"identifier {identifier} is already used at {seen[identifier]}")
            continue
        seen[identifier] = where
        directory = sentence.pop("directory")
        if sentence["label"] is None:
            builder.skip("unlabelled")
            continue
        stem = identifier.rsplit("-", 1)[0]
        pairs.setdefault(stem, _Pair(stem, directory)).sentences.append(sentence)
    return list(pairs.values())


def _parse_sentence(row: dict[str, Any], prefix: str) -> dict[str, Any] | str:
    """The sentence of one line (``label`` None when it has none), or why the line is unusable.

    ``prefix`` is the split part every identifier of the file starts with (``dev`` in dev.json).
    """
    identifier = row.get("identifier")
    if not isinstance(identifier, str) or not _IDENTIFIER.match(identifier) or identifier.split("-")[0] != prefix:
        return f"identifier is {identifier!r}; expected {prefix}-<set>-<pair>-<sentence>, such as {prefix}-10171-0-0"
    sentence = row.get("sentence")
    if not isinstance(sentence, str) or not sentence.strip():
        return f"{identifier}: sentence is missing or blank"
    label = row.get("label")
    if label is not None:
        label = _LABELS.get(str(label).lower())
        if label is None:
            return f'{identifier}: label is {row["label"]!r}; expected "True" or "False"'
    directory = row.get("directory")
    if directory is not None and not str(directory).isdigit():
        return f"{identifier}: directory is {directory!r}; expected the number of a folder in images/train/"
    return {
        "identifier": identifier,
        "sentence": sentence,
        "label": label,
        "directory": None if directory is None else str(directory),
    }


def _locate(listing: FolderListing, root: str, pair: _Pair) -> tuple[list[str], list[str]]:
    """The pair's image files found under ``root``, and the expected paths of those that are missing."""
    sources, missing = [], []
    for name in pair.names:
        candidates = pair.candidates(root, name)
        found = next((candidate for candidate in candidates if candidate in listing.files), None)
        if found:
            sources.append(found)
        else:
            missing.append(candidates[0])
    return sources, missing
