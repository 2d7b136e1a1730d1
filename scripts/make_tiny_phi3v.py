"""Write the data files of ``fixtures/tiny-phi3v``, the tiny random stand-in for Phi-3.5-vision.

The code (``configuration_phi3_v.py``, ``modeling_phi3_v.py``, ``processing_phi3_v.py``) and
``README.md`` in that folder are written by hand. This script writes the rest from the real
model's files in ``fixtures/phi35v``:

- ``config.json``: the real config with the sizes shrunk (``TINY_TEXT_SIZES``, a small CLIP tower);
- tokenizer, generation and processor files, copied unchanged;
- ``model.safetensors``: seeded random weights in bfloat16 (about 4 MB, almost all of it the
  32064-token embedding and ``lm_head``).

Run from the repository root::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/make_tiny_phi3v.py
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from phi3v_train.model import declare_shared_weights

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT / "fixtures" / "phi35v"
DEFAULT_OUT = REPO_ROOT / "fixtures" / "tiny-phi3v"

COPIED_FILES = (
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
)

TINY_TEXT_SIZES = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}

# CLIP ViT/14 at 336 pixels like the real tower (24x24 patches, 144 tokens per crop after the
# 2x2 merge), but 32 wide and 2 layers deep. The features come from layer -2, as in the real model.
TINY_CLIP_VISION_CONFIG = {
    "attention_dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": 32,
    "image_size": 336,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-05,
    "num_attention_heads": 2,
    "num_channels": 3,
    "num_hidden_layers": 2,
    "patch_size": 14,
    "projection_dim": 32,
}


def tiny_config(real_config: dict) -> dict:
    """The real ``config.json`` with tiny sizes; every other key and value is kept."""
    config = copy.deepcopy(real_config)
    config.update(TINY_TEXT_SIZES)
    config["_name_or_path"] = "tiny-phi3v"
    # The real file asks for flash_attention_2, which a CPU cannot load; transformers then picks
    # sdpa (or whatever `attn_implementation=` the caller passes).
    del config["_attn_implementation"]
    # "su" RoPE wants one factor per rotary pair: keep evenly spaced samples of the real factors.
    rotary_pairs = TINY_TEXT_SIZES["hidden_size"] // TINY_TEXT_SIZES["num_attention_heads"] // 2
    for name in ("short_factor", "long_factor"):
        factors = config["rope_scaling"][name]
        config["rope_scaling"][name] = [factors[i * len(factors) // rotary_pairs] for i in range(rotary_pairs)]
    config["img_processor"] = {
        "clip_vision_config": TINY_CLIP_VISION_CONFIG,
        "image_dim_out": TINY_CLIP_VISION_CONFIG["hidden_size"],
        "model_name": "tiny-random-clip-vit-patch14-336",
        "name": "clip_vision_model",
        "num_img_tokens": real_config["img_processor"]["num_img_tokens"],
    }
    return config


def write_random_weights(out: Path, seed: int) -> None:
    """Initialise the model from ``out``'s config and code with ``seed``; save bfloat16 weights."""
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    # The real init leaves the separators at zero; random ones keep them distinguishable in tests.
    embedding = model.model.vision_embed_tokens
    for separator in (embedding.glb_GN, embedding.sub_GN):
        torch.nn.init.normal_(separator, std=config.initializer_range)
    model.to(torch.bfloat16)
    declare_shared_weights(model)  # as the real code, the model cannot be saved under transformers 5 without it
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "model.safetensors", out / "model.safetensors")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the real model's files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the tiny model's folder (holds its code)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    real_config = json.loads((args.source / "config.json").read_text(encoding="utf-8"))
    config_text = json.dumps(tiny_config(real_config), indent=2, sort_keys=True) + "\n"
    (args.out / "config.json").write_text(config_text, encoding="utf-8")
    for name in COPIED_FILES:
        shutil.copyfile(args.source / name, args.out / name)
    write_random_weights(args.out, args.seed)


if __name__ == "__main__":
    main()
