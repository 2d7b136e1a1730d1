"""Helpers of the trainer's tests: dataset folders as the converters write them, short runs on the tiny model."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from phi3v_data.validation import validate
from phi3v_data.validation.manifest import write_validated_manifest
from phi3v_train.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO_ROOT / "fixtures" / "tiny-phi3v"
EXIF_ORIENTATION = 0x0112

MIXED_RECORDS: list[dict[str, Any]] = [
    {
        "id": "two-images",
        "source": "test",
        "conversations": [{"images": ["wide.jpg", "tall.png"], "user": "Which is wider?", "assistant": "The first."}],
    },
    {
        "id": "two-turns",
        "source": "test",
        "conversations": [
            {"images": ["rotated.jpg"], "user": "What colour?", "assistant": "Green."},
            {"user": "Are you sure?", "assistant": "Yes."},
        ],
    },
    {
        "id": "text-only",
        "source": "test",
        "conversations": [{"user": "Say hello.", "assistant": "Hello."}],
    },
    {
        "id": "tagged",
        "source": "test",
        "conversations": [{"images": ["wide.jpg"], "user": "Look: <|image_1|> What date?", "assistant": "1/8/93"}],
        "meta": {"answers": ["1/8/93", "01/08/93"]},
    },
]

VAL_RECORD = {**MIXED_RECORDS[3], "id": "tagged-val"}


def write_dataset(folder: Path, splits: dict[str, list[dict[str, Any]]], images: dict[str, Image.Image | bytes]) -> Path:
    """A dataset folder as the converters write it: ``test_<split>.jsonl``, ``images/`` and a manifest."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        target = folder / "images" / name
        if isinstance(image, bytes):
            target.write_bytes(image)
        else:
            image.save(target)
    for split, records in splits.items():
        path = folder / f"test_{split}.jsonl"
        path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    # Certified the way a user certifies a hand-made dataset: `phi3v-data validate DIR --write-manifest`.
    report = validate([folder], workers=1)
    assert report.ok, report.to_dict()["problems"]
    write_validated_manifest(folder, report)
    return folder


def rotated_jpeg(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored ``width`` x ``height`` whose EXIF says to rotate it (6: 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 200, 20)).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def train_config(output_dir: Path, data: list[Path], **overrides: Any) -> TrainConfig:
    """A run of a few steps on the tiny model that fits the CI budget."""
    settings: dict[str, Any] = {
        "data": data,
        "model": str(TINY_MODEL),
        "mode": "lora",
        "output_dir": output_dir,
        "num_crops": 1,
        "batch_size": 1,
        "micro_batch_size": 1,
        "max_steps": 3,
        "warmup_steps": 0,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "lora_rank": 4,
        "dataloader_workers": 0,
        "deepspeed": "none",
    }
    return TrainConfig.model_validate(settings | overrides)


def step_losses(log_history: list[dict[str, Any]]) -> dict[int, float]:
    """The training loss logged at each step."""
    return {entry["step"]: entry["loss"] for entry in log_history if "loss" in entry}
