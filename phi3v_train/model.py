"""Loading the native Phi-3(.5)-vision and preparing it for a training mode, as the cookbook does.

- **full**: every weight trains.
- **frozen-vision**: ``model.model.vision_embed_tokens`` gets no gradients, nor does the token embedding
  table: the cookbook freezes the public code's vision module, which holds that table (``wte``) too.
- **lora**: adapters on the language model's ``qkv_proj``, ``o_proj``, ``gate_up_proj``, ``down_proj`` and
  ``lm_head``, and (unless ``freeze_vision``) on CLIP's ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``,
  ``fc1``, ``fc2`` and the projection's ``img_projection.0`` / ``.2``; Gaussian init, alpha = rank x ratio.
- **qlora**: the same adapters on a model quantized to 4-bit NF4 by bitsandbytes.

For the adapter modes the CLIP layers after the one the model reads features from are removed first
(the cookbook's ``patch_clip_for_lora``): they never influence the output, and would otherwise hold
adapters that get no gradients. Removing them changes no output, so a saved adapter is loaded onto a
base model trimmed the same way.

Training loads the model with ``use_cache=False`` (a training step has no use for a KV cache);
``generate`` asks for one itself.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import BitsAndBytesConfig

from phi3v_data.errors import ModelFilesError, UsageError
from phi3v_train.config import TrainConfig
from phi3v_train.hardware import Numerics
from phi3v_train.modeling import Phi3VForCausalLM, Phi3VProcessor

LANGUAGE_LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head")
VISION_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "img_projection.0", "img_projection.2")
ADAPTER_CONFIG = "adapter_config.json"


def model_reference(model: str) -> str:
    """A local folder as an absolute path (what an adapter records as its base), a Hub id unchanged."""
    folder = Path(model)
    return str(folder.resolve()) if folder.is_dir() else model


def load_processor(model: str | Path, num_crops: int | None = None) -> Phi3VProcessor:
    """The model's processor; ``num_crops`` overrides the one it was saved with."""
    return Phi3VProcessor.from_pretrained(str(model), num_crops=num_crops)


def load_model(
    model: str | Path, numerics: Numerics, quantize_4bit: bool = False, device_map=None, use_cache: bool = False
) -> Phi3VForCausalLM:
    """The native model from the official checkpoint layout, with the chosen attention kernel."""
    options = {}
    if quantize_4bit:
        options["quantization_config"] = _nf4_config(numerics)
    try:
        return Phi3VForCausalLM.from_pretrained(
            str(model),
            dtype=getattr(torch, numerics.load_dtype_name),
            attn_implementation=numerics.attn,
            use_cache=use_cache,
            device_map=device_map,
            **options,
        )
    except ValueError as error:
        raise UsageError(f"cannot load {model} with --attn {numerics.attn}: {error}") from None


def _nf4_config(numerics: Numerics):
    # The cookbook computes in bf16 with flash-attention and fp16 otherwise; the CPU has fp32 only.
    compute_dtype = getattr(torch, numerics.compute_dtype_name)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype)


def vision_tower(model: nn.Module) -> nn.Module:
    """``model.model.vision_embed_tokens``: the CLIP tower, the projection and the HD separators."""
    tower = getattr(getattr(model, "model", None), "vision_embed_tokens", None)
    if tower is None:
        raise UsageError(f"{type(model).__name__} has no model.vision_embed_tokens: is it a Phi-3-vision model?")
    return tower


def trim_unused_vision_layers(model: nn.Module) -> None:
    """Drop the CLIP layers after the feature layer and the final norm (the cookbook's patch_clip_for_lora)."""
    tower = vision_tower(model)
    clip = tower.img_processor.vision_model
    layers = clip.encoder.layers
    # hidden_states holds the embeddings then each layer's output: index k is the output of k layers.
    del layers[tower.layer_idx % (len(layers) + 1) :]
    clip.post_layernorm = nn.Identity()
    # hidden_states[-1] is now the output of the layer the features always came from.
    tower.layer_idx = -1


def lora_config(rank: int, alpha_ratio: float, dropout: float, freeze_vision: bool):
    """The cookbook's LoRA configuration (``create_lora_config``)."""
    targets = list(LANGUAGE_LORA_TARGETS) + ([] if freeze_vision else list(VISION_LORA_TARGETS))
    return LoraConfig(
        r=rank,
        lora_alpha=round(rank * alpha_ratio),
        lora_dropout=dropout,
        target_modules=targets,
        init_lora_weights="gaussian",
    )


def prepare_for_mode(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Freeze, or wrap with adapters, as ``config.mode`` asks; returns the model to train."""
    if config.mode == "frozen-vision":
        vision_tower(model).requires_grad_(False)
        model.get_input_embeddings().requires_grad_(False)
        return model
    if not config.uses_adapter:
        return model
    trim_unused_vision_layers(model)
    adapted = get_peft_model(
        model, lora_config(config.lora_rank, config.lora_alpha_ratio, config.lora_dropout, config.freeze_vision)
    )
    # lm_head is a LoRA target, so PEFT would save the full (frozen, unchanged) embedding and lm_head
    # matrices with every adapter and checkpoint: hundreds of MB for Phi-3.5-vision, for nothing.
    adapted.save_pretrained = functools.partial(adapted.save_pretrained, save_embedding_layers=False)
    if config.freeze_vision:
        vision_tower(adapted.get_base_model()).requires_grad_(False)
    return adapted


def is_adapter_dir(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).is_file()


def adapter_base_model(folder: Path, base_model: str | None = None) -> str:
    """The model an adapter applies to: ``base_model`` if given, else the one its config records."""
    base = base_model or json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get(
        "base_model_name_or_path"
    )
    if not base:
        raise ModelFilesError(f"{folder / ADAPTER_CONFIG} does not name its base model: pass --base-model")
    return base


def load_trained(folder: Path, numerics: Numerics, base_model: str | None = None):
    """A training run's output for inference (KV cache on): the full model, or the base model with the adapter."""
    if not is_adapter_dir(folder):
        return load_model(folder, numerics, use_cache=True)
    model = load_model(adapter_base_model(folder, base_model), numerics, use_cache=True)
    trim_unused_vision_layers(model)
    return PeftModel.from_pretrained(model, str(folder))


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as stored."""
    trainable = total = 0
    for parameter in model.parameters():
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return trainable, total
