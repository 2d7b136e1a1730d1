"""Hateful Memes (Facebook AI, 2020): is a meme, its picture and its text together, hateful?

The raw folder is the download: ``img/NNNNN.png`` and JSON-lines files next to it, ``train.jsonl``
and the dev and test sets of either release (``dev.jsonl``/``test.jsonl``, or ``dev_seen``,
``dev_unseen``, ``test_seen``, ``test_unseen``). Dev files become the ``val`` split. One line of
``dev_seen.jsonl``::

    {"id": 8291, "img": "img/08291.png", "label": 0, "text": "when the coffee finally kicks in"}

becomes one line of ``hateful-memes_val.jsonl`` (the image is copied unchanged to ``images/val/``)::

    {"id": "val-8291", "source": "hateful-memes",
     "conversations": [{"images": ["val/08291.png"],
                        "user": "Is this meme hateful? Its text reads: \\"when the coffee finally kicks in\\".
                                 Answer yes or no.",
                        "assistant": "no"}]}

(the user text is one line; it is wrapped here)

The image path comes from ``img`` (ids are not zero-padded, file names are); the meme text is quoted
as written, non-ASCII included. ``--variant`` picks the seen or unseen dev and test sets, or both:
the two share memes, and a meme in several files of a split is written once (counted as
``duplicate``). Lines without a label (the original test sets) are skipped and counted as
``unlabelled``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from phi3v_data.converters._images import UnusableImage, copy_image
from phi3v_data.converters._inputs import PlanBuilder, list_folder, read_json_lines
from phi3v_data.converters.base import ConverterOptions, Item, ItemResult, Plan
from phi3v_data.converters.prompts import require_slot
from phi3v_data.errors import InputLayoutError
from phi3v_data.paths import path_fault

DEFAULT_PROMPT = 'Is this meme hateful? Its text reads: "{text}". Answer yes or no.'
ANSWERS = {0: "no", 1: "yes"}

# Annotation files in reading order (which copy of a duplicated meme is kept): file, split, variant.
_ANNOTATIONS = (
    ("train.jsonl", "train", None),
    ("dev.jsonl", "val", "seen"),
    ("dev_seen.jsonl", "val", "seen"),
    ("dev_unseen.jsonl", "val", "unseen"),
    ("test.jsonl", "test", "seen"),
    ("test_seen.jsonl", "test", "seen"),
    ("test_unseen.jsonl", "test", "unseen"),
)


class HatefulMemesOptions(ConverterOptions):
    variant: Literal["all", "seen", "unseen"] = "all"
    """Which dev and test files to read: "seen" (dev, dev_seen, test, test_seen: the paper's sets),
    "unseen" (dev_unseen, test_unseen: the 2020 competition's), or "all"."""

    prompt: str = DEFAULT_PROMPT
    """The user text; {text} is replaced by the meme's text."""

    @field_validator("prompt")
    @classmethod
    def _has_text_slot(cls, prompt: str) -> str:
        return require_slot(prompt, "text", "the meme's text")


class HatefulMemesConverter:
    """Hateful Memes: is this meme, picture and quoted text together, hateful? Answered yes or no."""

    name: ClassVar[str] = "hateful-memes"
    summary: ClassVar[str] = "Hateful Memes: img/ with train.jsonl and the dev/test .jsonl files; yes/no answers"
    Options: ClassVar[type[ConverterOptions]] = HatefulMemesOptions

    def plan(self, input_dir: Path, options: HatefulMemesOptions) -> Plan:
        listing = list_folder(input_dir)
        present = [(name, split, variant) for name, split, variant in _ANNOTATIONS if name in listing.files]
        if not present:
            raise InputLayoutError(
                f"{input_dir} is not a Hateful Memes folder: expected train.jsonl, dev_seen.jsonl, dev_unseen.jsonl, "
                "test_seen.jsonl or test_unseen.jsonl (or dev.jsonl, test.jsonl) next to an img/ folder of memes, but "
                f"it holds {listing.describe()}"
            )
        builder = PlanBuilder()
        used: set[str] = set()
        kept: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # (split, id) -> where it was read, meme
        owners: dict[str, str] = {}  # image file stem -> the line whose item writes it
        for name, split, variant in present:
            if options.variant != "all" and variant not in (None, options.variant):
                continue
            used.add(name)
            memes = _read_memes(input_dir / name, name, builder)
            if memes and not any(meme["img"] in listing.files for _, meme in memes):
                raise InputLayoutError(
                    f"none of the {len(memes)} images that {name} names (e.g. {memes[0][1]['img']}) exists: expected "
                    f"them in an img/ folder next to {name}"
                )
            for where, meme in memes:
                first_where, first = kept.setdefault((split, meme["id"]), (where, meme))
                if first_where != where:
                    _skip_or_reject_duplicate(builder, where, meme, first_where, first)
                elif meme["img"] not in listing.files:
                    builder.reject(meme["img"], f"no such file; named by {where}")
                elif (stem := PurePosixPath(meme["img"]).stem) in owners:  # real ids and images are one to one
                    builder.reject(
                        where, f"an image named {stem} is already used by {owners[stem]}; image names must be unique"
                    )
                else:
                    owners[stem] = where
                    used.add(meme["img"])
                    builder.add(split, meme["img"], meme)
        return builder.finish(listing, used)

    def convert_item(self, item: Item, input_dir: Path, options: HatefulMemesOptions) -> ItemResult:
        meme = item.payload
        image = copy_image(input_dir, meme["img"], f"{item.split}/{PurePosixPath(meme['img']).stem}")
        if isinstance(image, UnusableImage):
            return ItemResult.rejected(image.reason)
        turn = {
            "images": [image.relative_path],
            "user": options.prompt.replace("{text}", meme["text"]),
            "assistant": ANSWERS[meme["label"]],
        }
        record = {"id": f"{item.split}-{meme['id']}", "source": self.name, "conversations": [turn]}
        return ItemResult(records=[record], images=[image])


def _read_memes(path: Path, name: str, builder: PlanBuilder) -> list[tuple[str, dict[str, Any]]]:
    """The labelled memes of one file with where each was read (``dev_seen.jsonl:12``).

    Broken lines are rejected; lines without a label are skipped as ``unlabelled``.
    """
    memes = []
    for line in read_json_lines(path):
        where = f"{name}:{line.number}"
        meme = _parse_meme(line.row) if line.row is not None else line.error
        if isinstance(meme, str):
            builder.reject(where, meme)
        elif meme["label"] is None:
            builder.skip("unlabelled")
        else:
            memes.append((where, meme))
    return memes


def _parse_meme(row: dict[str, Any]) -> dict[str, Any] | str:
    """The meme of one line (``label`` None when it has none), or why the line is unusable."""
    meme_id = row.get("id")
    if isinstance(meme_id, bool) or not (isinstance(meme_id, int) or (isinstance(meme_id, str) and meme_id.isdigit())):
        return f"id is {meme_id!r}; expected a number such as 1235"
    img = row.get("img")
    if not isinstance(img, str) or not img.strip():
        return f"id {meme_id}: img is missing or blank; expected a path such as img/01235.png"
    fault = path_fault(img)
    if fault:
        return f"id {meme_id}: img {fault.message}"
    text = row.get("text")
    if not isinstance(text, str):
        return f"id {meme_id}: text is missing or not a string"
    label = row.get("label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label not in ANSWERS):
        return f"id {meme_id}: label is {label!r}; expected 0 (not hateful) or 1 (hateful)"
    return {"id": str(meme_id), "img": img, "text": text, "label": label}


def _skip_or_reject_duplicate(
    builder: PlanBuilder, where: str, meme: dict[str, Any], first_where: str, first: dict[str, Any]
) -> None:
    """A meme read again in the same split: counted when it is the same, rejected when it contradicts the first."""
    if meme == first:
        builder.skip("duplicate")
        return
    differing = " and ".join(key for key in ("img", "text", "label") if meme[key] != first[key])
    builder.reject(where, f"id {meme['id']} is also at {first_where} with a different {differing}; that one is kept")
