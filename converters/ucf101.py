"""``ucf101``: UCF-101 action clips to 8-frame video classification records, as the cookbook made them.

Two layouts are recognised:

- **official**: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` next to ``ucfTrainTestlist/`` (``classInd.txt``,
  ``trainlist0N.txt``, ``testlist0N.txt``, CRLF line ends), with ``--split-id N``. The label is the folder
  a list entry names, which must be a class of ``classInd.txt``; it is never parsed from the file name
  (real UCF-101 keeps ``v_HandStandPushups_*`` in ``HandstandPushups/``), and the numbers after the
  train entries are not used. Val is carved out of train by whole groups, since the clips of a group
  share actor and scene: for each class, the ``--val-groups`` highest group numbers among its train
  clips (a class always keeps at least one group in train). Listed clips that are missing are rejected;
  clips in no list of the split are skipped and counted.
- **subset** (the cookbook's ``UCF101_subset``): ``<root>/{train,val,test}/<Class>/*.avi|mp4``.

Every clip becomes one record: ``--num-frames`` frames at the cookbook's indices
``np.arange(0, n, n / k).astype(int)`` over the ``n`` frames that really decode (exactness is
:mod:`phi3v_data.converters.video`'s job), saved as ``images/<split>/<Class>/<stem>.<k>.jpg`` at the
original size unless ``--max-side``. A clip with fewer decodable frames than asked is padded with
repeated frames, as the cookbook formula does, so every record has ``--num-frames`` images; a
truncated clip contributes the frames that decode; a clip with no decodable frame, or one that cannot
be opened, is rejected. An item's images are all written before its record exists, so no record
points at a missing frame.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

from pydantic import Field

from phi3v_data.converters._inputs import FolderListing, PlanBuilder, list_folder
from phi3v_data.converters.base import SPLITS, ConverterOptions, ImageFile, Item, ItemResult, Plan
from phi3v_data.converters.class_tree import ClassFile, scan_class_tree
from phi3v_data.converters.prompts import VIDEO_PROMPT, classification_prompt, classification_record
from phi3v_data.errors import InputLayoutError, UsageError

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm"})
VIDEO_ROOT = "UCF-101"
LISTS_DIR = "ucfTrainTestlist"
_GROUP = re.compile(r"_g(\d+)_c\d+$")


class Ucf101Options(ConverterOptions):
    split_id: Literal[1, 2, 3] = 1
    """Official layout: which of the three train/test splits to use."""
    val_groups: int = Field(2, ge=0)
    """Official layout: per class, how many of the last train groups become val (0: no val)."""
    classes: tuple[str, ...] = ()
    """Convert only these classes (comma-separated); all when empty."""
    num_frames: int = Field(8, ge=1)
    """Frames sampled per clip."""
    max_side: int | None = Field(None, ge=1)
    """Shrink frames so that the longer side is at most this many pixels; original size when unset."""
    prompt: str = VIDEO_PROMPT
    """The user text; {classes} becomes the sorted, comma-separated class names."""


class Ucf101Converter:
    """UCF-101 action clips, one 8-frame classification record per clip.

    INPUT is the official layout (UCF-101/<Class>/*.avi next to ucfTrainTestlist/, split chosen by
    --split-id; val = the last --val-groups train groups of each class) or the cookbook's subset
    (<split>/<Class>/*.avi|mp4). Labels are class folders. Frames go to
    images/<split>/<Class>/<stem>.<k>.jpg; clips shorter than --num-frames repeat frames, clips
    that do not decode are rejected.
    """

    name: ClassVar[str] = "ucf101"
    summary: ClassVar[str] = (
        "UCF-101 action videos (official layout with ucfTrainTestlist/, or <split>/<Class>/ subset)"
    )
    Options: ClassVar[type[ConverterOptions]] = Ucf101Options

    def plan(self, input_dir: Path, options: Ucf101Options) -> Plan:
        if importlib.util.find_spec("av") is None:
            raise UsageError("the ucf101 source decodes videos with PyAV: pip install 'phi3v-data[video]'")
        builder = PlanBuilder()
        if (input_dir / VIDEO_ROOT).is_dir() or (input_dir / LISTS_DIR).is_dir():
            clips, listing, videos = _plan_official(input_dir, options, builder)
        else:
            clips, listing, videos = _plan_subset(input_dir, options, builder)
        classes = sorted({clip.label for clip in clips})
        if options.classes:
            _check_classes_exist(options.classes, classes)
            selected = [clip for clip in clips if clip.label in options.classes]
            builder.skip("class-not-selected", len(clips) - len(selected))
            clips, classes = selected, sorted(options.classes)
        user = classification_prompt(options.prompt, classes)
        for split in SPLITS:
            for clip in sorted((clip for clip in clips if clip.split == split), key=lambda clip: clip.path):
                builder.add(split, clip.path, _payload(clip, split, user))
        return builder.finish(listing, videos)

    def convert_item(self, item: Item, input_dir: Path, options: Ucf101Options) -> ItemResult:
        from phi3v_data.converters.video import VideoDecodeError, encode_jpeg, sample_clip

        try:
            clip = sample_clip(input_dir / item.payload["video"], options.num_frames, options.max_side)
        except VideoDecodeError as error:
            return ItemResult.rejected(error.reason)
        prefix = item.payload["image_prefix"]
        images = [ImageFile(f"{prefix}.{k}.jpg", encode_jpeg(frame)) for k, frame in enumerate(clip.frames)]
        record = classification_record(
            split=item.split,
            index=item.index,
            source=self.name,
            images=[image.relative_path for image in images],
            user=item.payload["user"],
            label=item.payload["label"],
        )
        return ItemResult(records=[record], images=images)


def _payload(clip: ClassFile, split: str, user: str) -> dict[str, str]:
    return {"video": clip.path, "label": clip.label, "user": user, "image_prefix": clip.output_stem(split)}


def _plan_subset(
    input_dir: Path, options: Ucf101Options, builder: PlanBuilder
) -> tuple[list[ClassFile], FolderListing, set[str]]:
    """The labelled clips; also the listing and its video files, from which ``Plan.ignored`` is counted."""
    tree = scan_class_tree(input_dir, VIDEO_EXTENSIONS)
    if not (tree.has_splits and tree.files):
        raise InputLayoutError(
            f"expected UCF-101 in the official layout ({VIDEO_ROOT}/<Class>/*.avi next to {LISTS_DIR}/) or the "
            f"cookbook's subset layout (<split>/<Class>/*.avi|mp4, splits train, val, test), but {input_dir} "
            f"holds {tree.listing.describe()}{_nested_layout_hint(input_dir, tree.listing)}"
        )
    defaults = Ucf101Options()
    for flag, value, default in (
        ("--split-id", options.split_id, defaults.split_id),
        ("--val-groups", options.val_groups, defaults.val_groups),
    ):
        if value != default:
            raise UsageError(
                f"{flag} applies to the official layout ({LISTS_DIR}/), and {input_dir} is a subset layout"
            )
    for path in tree.misplaced:
        builder.reject(path, "not inside a <split>/<Class>/ folder, so it has no label")
    return tree.files, tree.listing, tree.data_files


def _nested_layout_hint(input_dir: Path, listing: FolderListing) -> str:
    """Point at the one subfolder that holds the dataset (the subset's archive unpacks into one)."""
    children = [folder for folder in listing.folders if "/" not in folder]
    if len(children) == 1 and any(
        f"{children[0]}/{name}" in listing.folders for name in (*SPLITS, VIDEO_ROOT, LISTS_DIR)
    ):
        return f" (did you mean --input {input_dir / children[0]}?)"
    return ""


def _plan_official(
    input_dir: Path, options: Ucf101Options, builder: PlanBuilder
) -> tuple[list[ClassFile], FolderListing, set[str]]:
    """As :func:`_plan_subset`; the listing is of ``UCF-101/``, so its paths lack that prefix."""
    for required in (VIDEO_ROOT, LISTS_DIR):
        if not (input_dir / required).is_dir():
            raise InputLayoutError(
                f"expected the official UCF-101 layout, {VIDEO_ROOT}/<Class>/*.avi next to {LISTS_DIR}/, but "
                f"{input_dir} has no {required}/ folder"
            )
    lists = input_dir / LISTS_DIR
    class_names = set(_read_class_index(lists / "classInd.txt"))
    listing = list_folder(input_dir / VIDEO_ROOT)
    present = {f"{VIDEO_ROOT}/{path}" for path in listing.files}
    clips: list[ClassFile] = []
    for split, list_name in (
        ("train", f"trainlist0{options.split_id}.txt"),
        ("test", f"testlist0{options.split_id}.txt"),
    ):
        for number, entry in _read_split_list(lists / list_name):
            path = f"{VIDEO_ROOT}/{entry}"
            label, _, inner = entry.partition("/")
            if not inner or label not in class_names:
                builder.reject(path, f"{LISTS_DIR}/{list_name} line {number} names no class of classInd.txt")
            elif path not in present:
                builder.reject(path, f"listed in {LISTS_DIR}/{list_name} line {number}, but the file is missing")
            else:
                clips.append(ClassFile(path, split, label, inner))
    clips = _carve_val_groups(clips, options.val_groups)
    videos = {path for path in listing.files if PurePosixPath(path).suffix.lower() in VIDEO_EXTENSIONS}
    listed = {clip.path.removeprefix(f"{VIDEO_ROOT}/") for clip in clips}
    builder.skip("not-in-split-lists", len(videos - listed))
    return clips, listing, videos


def _read_class_index(path: Path) -> list[str]:
    """The class names of ``classInd.txt`` (``<number> <ClassName>`` per line)."""
    names = []
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise InputLayoutError(f"{path} line {number}: expected '<number> <ClassName>', found {line!r}")
        names.append(fields[1])
    return names


def _read_split_list(path: Path) -> list[tuple[int, str]]:
    """``(line number, <Class>/<file>)`` for each entry; train lists add a class number, not used."""
    return [(number, line.split()[0]) for number, line in _lines(path)]


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CRLF line ends as shipped are accepted."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputLayoutError(f"expected {path.name} in {path.parent} (the official UCF-101 split lists)") from None
    except UnicodeDecodeError as error:
        raise InputLayoutError(f"{path} is not a text file ({error.reason})") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _carve_val_groups(clips: list[ClassFile], val_groups: int) -> list[ClassFile]:
    """Move, per class, the clips of the ``val_groups`` highest train groups to val (a class keeps one)."""
    if val_groups == 0:
        return clips
    groups_by_label: dict[str, set[int]] = {}
    for clip in clips:
        group = _group(clip)
        if clip.split == "train" and group is not None:
            groups_by_label.setdefault(clip.label, set()).add(group)
    val = {
        label: set(sorted(groups)[-val_groups:]) if len(groups) > val_groups else set(sorted(groups)[1:])
        for label, groups in groups_by_label.items()
    }
    return [
        replace(clip, split="val") if clip.split == "train" and _group(clip) in val.get(clip.label, set()) else clip
        for clip in clips
    ]


def _group(clip: ClassFile) -> int | None:
    """The ``gXX`` group of ``v_<Class>_gXX_cYY``; None for a file not named that way (it stays in train)."""
    match = _GROUP.search(PurePosixPath(clip.inner).stem)
    return int(match.group(1)) if match else None


def _check_classes_exist(wanted: tuple[str, ...], classes: list[str]) -> None:
    unknown = sorted(set(wanted) - set(classes))
    if unknown:
        raise UsageError(f"--classes: {', '.join(unknown)} not found; the input has: {', '.join(classes)}")
