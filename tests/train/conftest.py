"""Datasets for the trainer's tests (runs use the tiny model, one thread, a few steps, num_crops 1).

Two datasets: ``folder_dataset`` is made by ``phi3v-data convert folder`` from ``fixtures/folder/splits``
(single-image classification records, train/val/test); ``mixed_dataset`` is written here with what the
converter does not make: several images in a record, several turns, explicit image tags, a text-only
record, an EXIF-rotated photo and answers in ``meta``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from train_fixtures import MIXED_RECORDS, REPO_ROOT, TINY_MODEL, VAL_RECORD, rotated_jpeg, write_dataset

from phi3v_data.prompt import PromptBuilder

FOLDER_FIXTURE = REPO_ROOT / "fixtures" / "folder" / "splits"


@pytest.fixture(scope="session")
def builder() -> PromptBuilder:
    """The tiny model's prompt builder (the real Phi-3.5-vision tokenizer and chat template)."""
    return PromptBuilder.from_model_dir(TINY_MODEL)


@pytest.fixture(scope="session")
def processor():
    """The tiny model's processor at num_crops 1, as the test runs train."""
    from phi3v_train.model import load_processor

    return load_processor(TINY_MODEL, num_crops=1)


@pytest.fixture(scope="session")
def collator(builder, processor):
    from phi3v_train.data import Phi3VCollator

    return Phi3VCollator.for_processor(builder, processor)


@pytest.fixture(scope="session")
def folder_dataset(tmp_path_factory) -> Path:
    """``phi3v-data convert folder`` of the fixture class folders: train (4), val (2), test (2)."""
    from phi3v_data.cli import main as phi3v_data

    out = tmp_path_factory.mktemp("folder") / "dataset"
    result = CliRunner().invoke(
        phi3v_data, ["convert", "folder", "--input", str(FOLDER_FIXTURE), "--out", str(out), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def mixed_dataset(tmp_path_factory) -> Path:
    """Multi-image, multi-turn, tagged, text-only and EXIF-rotated records (train holds all four)."""
    images = {
        "wide.jpg": Image.new("RGB", (64, 48), (200, 40, 40)),
        "tall.png": Image.new("RGB", (30, 60), (40, 40, 200)),
        "rotated.jpg": rotated_jpeg(64, 48, orientation=6),
    }
    return write_dataset(
        tmp_path_factory.mktemp("mixed") / "dataset", {"train": MIXED_RECORDS, "val": [VAL_RECORD]}, images
    )
