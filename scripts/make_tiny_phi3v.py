"""Write the configuration and data files of ``fixtures/tiny-phi3v``, a tiny random Phi-3.5-vision.

From the real model's files in ``fixtures/phi35v``:

- ``config.json``: the real config with the sizes shrunk (``TINY_TEXT_SIZES``) and a ``vision_config``
  that shrinks the CLIP tower (``TINY_VISION_SIZES``; the real tower is ViT-L/14-336); weights in
  float32 so golden outputs compare exactly;
- tokenizer, generation and processor files, copied unchanged.

The weights (``model.safetensors``, official checkpoint names) are written by
``scripts/make_phi3v_goldens.py``, which initialises the public remote code with this config and
records its outputs, so the tests compare the native model against the public one on the same weights.

Run from the repository root::

    python scripts/make_tiny_phi3v.py
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from pathlib import Path

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

# Still ViT/14 at 336 pixels (24x24 patches, 144 tokens per crop after the 2x2 merge), but 32 wide and
# 2 layers deep: the features come from layer -2, as in the real model.
TINY_VISION_SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


def tiny_config(real_config: dict) -> dict:
    """The real ``config.json`` with tiny sizes; every other key and value is kept."""
    config = copy.deepcopy(real_config)
    config.update(TINY_TEXT_SIZES)
    config["_name_or_path"] = "tiny-phi3v"
    # The real file asks for flash_attention_2; the native model picks its kernel where it loads.
    del config["_attn_implementation"]
    # "su" RoPE wants one factor per rotary pair: keep evenly spaced samples of the real factors.
    rotary_pairs = TINY_TEXT_SIZES["hidden_size"] // TINY_TEXT_SIZES["num_attention_heads"] // 2
    for name in ("short_factor", "long_factor"):
        factors = config["rope_scaling"][name]
        config["rope_scaling"][name] = [factors[i * len(factors) // rotary_pairs] for i in range(rotary_pairs)]
    config["img_processor"]["image_dim_out"] = TINY_VISION_SIZES["hidden_size"]
    config["vision_config"] = TINY_VISION_SIZES
    config["torch_dtype"] = "float32"
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the real model's files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the tiny model's folder")
    args = parser.parse_args(argv)

    real_config = json.loads((args.source / "config.json").read_text(encoding="utf-8"))
    config_text = json.dumps(tiny_config(real_config), indent=2, sort_keys=True) + "\n"
    (args.out / "config.json").write_text(config_text, encoding="utf-8")
    for name in COPIED_FILES:
        shutil.copyfile(args.source / name, args.out / name)


if __name__ == "__main__":
    main()
