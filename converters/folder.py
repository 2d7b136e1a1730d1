"""``folder``: image classification from class folders, ``<root>/[<split>/]<class>/<images>``.

Every file with a common image extension (any case) is an item; its class is the folder it sits in
below the root (or below the split folder), at any depth. Without split folders everything is
train, unless ``--val-fraction`` / ``--test-fraction`` move a share of each class out: the images
of a class are ordered by ``sha256(f"{seed}/{path}")`` and the first ones go to test, the next to
val, so the choice depends only on the seed and the file's path. Images are copied byte for byte
(checked from their header and tail, see ``phi3v-data validate --images decode`` for pixels) to
``images/<split>/<class>/<path below the class folder>``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import ClassVar

from pydantic import Field, model_validator

from phi3v_data.converters._images import UnusableImage, copy_image
from phi3v_data.converters._inputs import PlanBuilder
from phi3v_data.converters.base import ConverterOptions, Item, ItemResult, Plan
from phi3v_data.converters.class_tree import ClassFile, scan_class_tree
from phi3v_data.converters.prompts import IMAGE_PROMPT, classification_prompt, classification_record
from phi3v_data.errors import InputLayoutError, UsageError
from phi3v_data.images import EXTENSIONS_BY_FORMAT

IMAGE_EXTENSIONS = frozenset(suffix for suffixes in EXTENSIONS_BY_FORMAT.values() for suffix in suffixes)


class FolderOptions(ConverterOptions):
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Without split folders: the share of each class's images moved to val."""
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Without split folders: the share of each class's images moved to test."""
    seed: int = 0
    """Chooses which images --val-fraction and --test-fraction move."""
    prompt: str = IMAGE_PROMPT
    """The user text; {classes} becomes the sorted, comma-separated class names."""

    @model_validator(mode="after")
    def _leave_some_train(self) -> FolderOptions:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("--val-fraction plus --test-fraction must stay below 1, so that train keeps images")
        return self


class FolderConverter:
    """Images sorted into class folders; the class is the answer.

    INPUT is <root>/<class>/<images> (all train, unless --val-fraction / --test-fraction move a
    seeded share of each class) or <root>/<split>/<class>/<images> with splits train, val, test.
    Images are copied byte for byte to images/<split>/<class>/...
    """

    name: ClassVar[str] = "folder"
    summary: ClassVar[str] = "image classification from <root>/[<split>/]<class>/<images>"
    Options: ClassVar[type[ConverterOptions]] = FolderOptions

    def plan(self, input_dir: Path, options: FolderOptions) -> Plan:
        tree = scan_class_tree(input_dir, IMAGE_EXTENSIONS)
        if not tree.files:
            raise InputLayoutError(
                f"expected images in class folders, <root>/<class>/<images> or <root>/<split>/<class>/<images>, "
                f"but {input_dir} holds {tree.listing.describe()} there"
            )
        if tree.has_splits and (options.val_fraction or options.test_fraction):
            raise UsageError(
                f"{input_dir} already has split folders; --val-fraction and --test-fraction apply only to a tree "
                "without them"
            )
        files, clashes = _without_clashes(tree.files)
        user = classification_prompt(options.prompt, tree.classes)
        by_split: dict[str, list[ClassFile]] = {"train": [], "val": [], "test": []}
        for file in files:
            by_split[file.split or "train"].append(file)
        if not tree.has_splits:
            by_split = _carve(by_split["train"], options)
        builder = PlanBuilder()
        for split, split_files in by_split.items():
            for file in sorted(split_files, key=lambda file: file.path):
                builder.add(split, file.path, _payload(split, file, user))
        for path in tree.misplaced:
            builder.reject(path, "not inside a class folder, so it has no label")
        for path, reason in clashes:
            builder.reject(path, reason)
        return builder.finish(tree.listing, tree.data_files)

    def convert_item(self, item: Item, input_dir: Path, options: FolderOptions) -> ItemResult:
        image = copy_image(input_dir, item.payload["path"], item.payload["target_stem"])
        if isinstance(image, UnusableImage):
            return ItemResult.rejected(image.reason)
        record = classification_record(
            split=item.split,
            index=item.index,
            source=self.name,
            images=[image.relative_path],
            user=item.payload["user"],
            label=item.payload["label"],
        )
        return ItemResult(records=[record], images=[image])


def _payload(split: str, file: ClassFile, user: str) -> dict[str, str]:
    return {"path": file.path, "label": file.label, "user": user, "target_stem": file.output_stem(split)}


def _without_clashes(files: list[ClassFile]) -> tuple[list[ClassFile], list[tuple[str, str]]]:
    """Keep one file per output name: ``a.jpg`` and ``a.PNG`` in one folder would both become ``a.<ext>``."""
    kept: dict[tuple[str | None, str], ClassFile] = {}
    clashes = []
    for file in files:
        name = (file.split, PurePosixPath(file.path).with_suffix("").as_posix().casefold())
        if name in kept:
            clashes.append((file.path, f"has the same name but for the extension as {kept[name].path}; rename one"))
        else:
            kept[name] = file
    return list(kept.values()), clashes


def _carve(train: list[ClassFile], options: FolderOptions) -> dict[str, list[ClassFile]]:
    """Move each class's seeded share of images (rounded down) from train to test and val."""
    by_label: dict[str, list[ClassFile]] = {}
    for file in train:
        by_label.setdefault(file.label, []).append(file)
    splits: dict[str, list[ClassFile]] = {"train": [], "val": [], "test": []}
    for files in by_label.values():
        files.sort(key=lambda file: hashlib.sha256(f"{options.seed}/{file.path}".encode()).hexdigest())
        test_end = int(len(files) * options.test_fraction)
        val_end = test_end + int(len(files) * options.val_fraction)
        splits["test"] += files[:test_end]
        splits["val"] += files[test_end:val_end]
        splits["train"] += files[val_end:]
    return splits
