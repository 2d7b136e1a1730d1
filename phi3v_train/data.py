"""The data path: validated JSONL records, images opened lazily, and batches the model takes.

A dataset folder is what ``phi3v-data convert`` writes: ``<name>_<split>.jsonl`` files, the images under
``images/`` (the root record paths are relative to) and ``manifest.json``. :func:`load_split` reads a
split's records once (text only); :class:`RecordDataset` opens a record's images when the record is
drawn, with the core's loader (EXIF rotation, RGB); :class:`Phi3VCollator` turns records into tensors:

- ``pixel_values`` and ``image_sizes`` from the model's image processor, per record, then padded over
  crops and concatenated across the batch (the model walks images in batch order);
- ``input_ids`` and ``labels`` from the core's :class:`~phi3v_data.prompt.PromptBuilder`, the one the
  validator counts lengths with, so a length it reports is the length trained;
- right padding, and an ``attention_mask`` from the lengths: pad and eos are one token in Phi-3.5-vision,
  so ``input_ids != pad_id`` would hide each record's real final ``<|endoftext|>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image

from phi3v_data import hd_crop
from phi3v_data.errors import Phi3vDataError, UsageError
from phi3v_data.format import Record
from phi3v_data.hd_crop import image_token_count
from phi3v_data.images import ImageInfo, load_image, probe_image
from phi3v_data.jsonl import iter_records
from phi3v_data.manifest import Manifest
from phi3v_data.paths import IMAGES_DIR
from phi3v_data.prompt import IGNORE_INDEX, PromptBuilder
from phi3v_train.config import TrainConfig

EVAL_SPLIT_PREFERENCE = ("val", "validation", "test")


class DataLoadError(Phi3vDataError, OSError):
    """A record's image could not be read while training (it changed after validation)."""


class ProcessorMismatchError(Phi3vDataError, RuntimeError):
    """The model's image processor counts image tokens differently from phi3v-data."""


class ImageProcessor(Protocol):
    """The part of the model's image processor the collator uses (``processor.image_processor``)."""

    num_crops: int

    def __call__(self, images: list[Image.Image], return_tensors: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """One record and where it came from, for messages that name the file and line."""

    record: Record
    images_root: Path
    location: str
    """``file.jsonl:line``."""

    def image_paths(self) -> list[Path]:
        return [self.images_root / relative for relative in self.record.images]


def choose_split(manifest: Manifest, dataset_dir: Path, wanted: str | None, option: str) -> str:
    """The split to read: ``wanted``, or for evaluation val, else test, else the only one."""
    available = list(manifest.splits)
    if wanted is not None:
        if wanted not in manifest.splits:
            raise UsageError(
                f"{dataset_dir} has no {wanted!r} split (it has: {', '.join(available) or 'none'}); choose one with {option}"
            )
        return wanted
    for name in EVAL_SPLIT_PREFERENCE:
        if name in manifest.splits:
            return name
    if len(available) == 1:
        return available[0]
    raise UsageError(f"{dataset_dir} has splits {', '.join(available) or 'none'}: choose one with {option}")


def load_split(dataset_dir: Path, manifest: Manifest, split: str) -> list[DatasetRecord]:
    """The records of one split of a validated dataset, in file order."""
    entry = manifest.splits[split]
    path = dataset_dir / entry.file
    images_root = (dataset_dir / IMAGES_DIR).resolve()
    return [
        DatasetRecord(record, images_root, f"{path}:{number}") for number, record in iter_records(path)
    ]


def split_records(
    dataset_dir: Path, manifest: Manifest, wanted: str | None, option: str
) -> tuple[str, list[DatasetRecord]]:
    """The split :func:`choose_split` picks and its records."""
    split = choose_split(manifest, dataset_dir, wanted, option)
    return split, load_split(dataset_dir, manifest, split)


def train_records(config: TrainConfig, manifest_of: Callable[[Path], Manifest]) -> list[DatasetRecord]:
    """The --train-split records of every --data folder, in order; ``manifest_of`` opens a folder."""
    records: list[DatasetRecord] = []
    for folder in config.data:
        records += split_records(folder, manifest_of(folder), config.train_split, "--train-split")[1]
    return records


def default_num_crops(records: Sequence[DatasetRecord]) -> int:
    """The core's rule, which ``phi3v-data validate`` counts with too: 4 crops when records carry several
    images (video frames), else 16."""
    return hd_crop.default_num_crops(len(entry.record.images) for entry in records)


def record_length(entry: DatasetRecord, builder: PromptBuilder, num_crops: int) -> int:
    """Tokens the record trains on, counted from image headers as the validator counts them."""
    counts = []
    for path in entry.image_paths():
        info = probe_image(path)
        if not isinstance(info, ImageInfo):
            raise DataLoadError(f"{entry.location} (id {entry.record.id}): {path}: {info.message}")
        counts.append(image_token_count(*info.display_size, num_crops))
    return builder.count_tokens(entry.record, counts)


def drop_too_long(
    records: Sequence[DatasetRecord], builder: PromptBuilder, num_crops: int, max_length: int | None
) -> tuple[list[DatasetRecord], int]:
    """The records that fit ``max_length`` and how many were skipped; records are never truncated."""
    if max_length is None:
        return list(records), 0
    kept = [entry for entry in records if record_length(entry, builder, num_crops) <= max_length]
    return kept, len(records) - len(kept)


class RecordDataset(torch.utils.data.Dataset):
    """Records whose images are decoded only when the record is drawn."""

    def __init__(self, records: Sequence[DatasetRecord]):
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = self.records[index]
        return {"entry": entry, "images": [_load(entry, path) for path in entry.image_paths()]}


class Phi3VCollator:
    """Records and their images to the model's batch: right-padded, images concatenated in order."""

    def __init__(self, builder: PromptBuilder, image_processor: ImageProcessor, pad_token_id: int):
        self.builder = builder
        self.image_processor = image_processor
        self.pad_token_id = pad_token_id

    @classmethod
    def for_processor(cls, builder: PromptBuilder, processor) -> Phi3VCollator:
        """The collator of a model's processor: its image processor, and its tokenizer's padding id
        (``<|endoftext|>`` in Phi-3.5-vision, the same as eos)."""
        tokenizer = processor.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return cls(builder, processor.image_processor, pad)

    def encode(self, entry: DatasetRecord, images: list[Image.Image]) -> dict[str, Any]:
        """One record's ``input_ids``, ``labels`` and, if it has images, ``pixel_values`` and ``image_sizes``."""
        if not images:
            encoded = self.builder.encode(entry.record, [])
            return {"input_ids": encoded.input_ids, "labels": encoded.labels}
        processed = self.image_processor(images, return_tensors="pt")
        counts = [int(count) for count in processed["num_img_tokens"]]
        self._check_counts(entry, images, counts)
        encoded = self.builder.encode(entry.record, counts)
        return {
            "input_ids": encoded.input_ids,
            "labels": encoded.labels,
            "pixel_values": processed["pixel_values"],
            "image_sizes": torch.as_tensor(processed["image_sizes"]),
        }

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [self.encode(example["entry"], example["images"]) for example in examples]
        return pad_batch(encoded, self.pad_token_id)

    def _check_counts(self, entry: DatasetRecord, images: list[Image.Image], counts: list[int]) -> None:
        num_crops = self.image_processor.num_crops
        for image, count in zip(images, counts):
            expected = image_token_count(image.width, image.height, num_crops)
            if count != expected:
                raise ProcessorMismatchError(
                    f"{entry.location} (id {entry.record.id}): the model's image processor gives {count} tokens "
                    f"for a {image.width}x{image.height} image at num_crops={num_crops}, phi3v-data counts "
                    f"{expected}; lengths from `phi3v-data validate` would be wrong for this model"
                )


def pad_batch(encoded: list[dict[str, Any]], pad_token_id: int, left: bool = False) -> dict[str, torch.Tensor]:
    """Pad ids and labels (on the right; on the left for generation), mask by length, pad
    ``pixel_values`` over crops and concatenate."""
    longest = max(len(item["input_ids"]) for item in encoded)
    input_ids = torch.full((len(encoded), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(encoded), longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), longest), dtype=torch.long)
    for row, item in enumerate(encoded):
        length = len(item["input_ids"])
        span = slice(longest - length, longest) if left else slice(0, length)
        input_ids[row, span] = torch.tensor(item["input_ids"], dtype=torch.long)
        labels[row, span] = torch.tensor(item["labels"], dtype=torch.long)
        attention_mask[row, span] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, **image_batch(encoded)}


def image_batch(encoded: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The records' ``pixel_values`` (padded over crops) and ``image_sizes``, concatenated in record order."""
    with_images = [item for item in encoded if "pixel_values" in item]
    if not with_images:
        return {}
    crops = max(item["pixel_values"].shape[1] for item in with_images)
    return {
        "pixel_values": _concatenate([_pad_crops(item["pixel_values"], crops) for item in with_images]),
        "image_sizes": _concatenate([item["image_sizes"] for item in with_images]),
    }


def _concatenate(tensors: list[torch.Tensor]) -> torch.Tensor:
    # A single record's pixels (tens of MB for 8 frames at 4 crops) need no copy.
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _pad_crops(pixel_values: torch.Tensor, crops: int) -> torch.Tensor:
    """Zero crops appended to [images, crops, 3, H, W] up to ``crops``, as the processor pads."""
    missing = crops - pixel_values.shape[1]
    if not missing:
        return pixel_values
    padding = pixel_values.new_zeros((pixel_values.shape[0], missing, *pixel_values.shape[2:]))
    return torch.cat([pixel_values, padding], dim=1)


def _load(entry: DatasetRecord, path: Path) -> Image.Image:
    try:
        return load_image(path)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataLoadError(
            f"{entry.location} (id {entry.record.id}): cannot decode {path}: {error}. The file changed after "
            "validation or does not decode: check it with `phi3v-data validate DIR --images decode`"
        ) from None
