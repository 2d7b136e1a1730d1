"""Fixtures for the native Phi-3(.5)-vision classes on the tiny model in ``fixtures/tiny-phi3v``.

``tests/conftest.py`` already runs everything offline on one thread per op.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL_DIR = REPO_ROOT / "fixtures" / "tiny-phi3v"
REAL_MODEL_FILES_DIR = REPO_ROOT / "fixtures" / "phi35v"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The committed tiny model folder: a config and random weights in the official layout, no code."""
    return TINY_MODEL_DIR


@pytest.fixture(scope="session")
def real_model_files_dir() -> Path:
    """The real model's tokenizer and configuration files (no weights, no code)."""
    return REAL_MODEL_FILES_DIR


@pytest.fixture(scope="session")
def tiny_generator():
    """The ``scripts/make_tiny_phi3v.py`` module, which wrote the tiny model's configuration."""
    spec = importlib.util.spec_from_file_location("make_tiny_phi3v", REPO_ROOT / "scripts" / "make_tiny_phi3v.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_processor():
    """``load_processor(num_crops)``: the tiny model's processor, loaded once per ``num_crops``."""
    from phi3v_train import Phi3VProcessor

    processors = {}

    def load(num_crops: int = 4):
        if num_crops not in processors:
            processors[num_crops] = Phi3VProcessor.from_pretrained(TINY_MODEL_DIR, num_crops=num_crops)
        return processors[num_crops]

    return load


@pytest.fixture
def load_model():
    """``load_model(**from_pretrained_kwargs)``: a fresh float32 model in eval mode (loading takes ~0.1 s)."""
    import torch

    from phi3v_train import Phi3VForCausalLM

    def load(**kwargs):
        kwargs.setdefault("dtype", torch.float32)
        return Phi3VForCausalLM.from_pretrained(TINY_MODEL_DIR, **kwargs).eval()

    return load


@pytest.fixture
def model(load_model):
    """A fresh float32 tiny model in eval mode."""
    return load_model()
