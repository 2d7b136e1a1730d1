"""phi3v-train: fine-tune Phi-3.5-vision on datasets that ``phi3v-data validate`` accepts.

The native model classes are importable from here (``from phi3v_train import Phi3VForCausalLM``); they
load torch and transformers on first use, so the command line starts without them.
"""

from __future__ import annotations

import importlib

_MODEL_CLASSES = ("Phi3VConfig", "Phi3VForCausalLM", "Phi3VImageProcessor", "Phi3VModel", "Phi3VProcessor")
__all__ = list(_MODEL_CLASSES)


def __getattr__(name: str):
    if name in _MODEL_CLASSES:
        return getattr(importlib.import_module("phi3v_train.modeling"), name)
    raise AttributeError(f"module 'phi3v_train' has no attribute {name!r}")
