"""Seconds for 64 new tokens after a ~2,000-token image prompt: the native cached ``generate`` against
the loop ``phi3v-train eval`` ran before the model was native, in one run.

    OMP_NUM_THREADS=2 python bench/eval_speed.py             # the figures: about a minute on 2 cores
    OMP_NUM_THREADS=1 python bench/eval_speed.py --tiny      # smoke run of the script: seconds, figures meaningless

What the issue "phi3v-train owns its model" asks for (target: cached ``generate`` at least 10x faster).
Both sides run the same random-weight model (seeded, fp32, sdpa attention, ``eval()``, no gradients) on
the same inputs, one after the other:

- loop: the old eval's ``greedy_answer``: one full forward of the whole growing sequence per new token
  (``use_cache=False``; the image goes through CLIP again each time, logits for every position, the
  last one's argmax appended);
- generate: ``model.generate(..., do_sample=False)``, the prompt once and then one token at a time
  through the KV cache.

``min_new_tokens`` keeps ``generate`` from stopping at eos; the loop masks the same eos ids out, so
both produce exactly ``--new-tokens`` tokens, and the script fails unless both give the same ones.

The model is MID-SIZE, not Phi-3.5-vision: the official config with the language model shrunk to
``--hidden`` x ``--layers`` (head size 96 as in the real model, so the real LongRoPE factors apply)
and a 64-wide, 2-layer CLIP tower; the vocabulary is the real 32,064. The prompt is the real chat
format with one 320x240 image, 1,921 image tokens at ``num_crops`` 16. The ratio grows with the model
and the prompt (the loop's cost is quadratic in the tokens it generates); this size keeps the run short.
Each side is timed once after a warm-up forward pass; the last line is ``RATIO cached-generate <x>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from phi3v_train import Phi3VConfig, Phi3VForCausalLM, Phi3VProcessor

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_MODEL_FILES = REPO_ROOT / "fixtures" / "phi35v"
TINY_MODEL = REPO_ROOT / "fixtures" / "tiny-phi3v"
PROMPT = "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\n"
IMAGE_SIZE = (320, 240)
HEAD_SIZE = 96  # Phi-3.5-vision's: 3072 / 32 heads; the LongRoPE factors are one per rotary pair of it
VISION_SIZES = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2}
TARGET = 10.0


def mid_size_config(hidden: int, layers: int) -> Phi3VConfig:
    """The official config.json with a smaller language model and CLIP tower (every other key kept)."""
    if hidden % HEAD_SIZE:
        raise SystemExit(f"--hidden must be a multiple of {HEAD_SIZE} (the real head size), got {hidden}")
    values = json.loads((REAL_MODEL_FILES / "config.json").read_text(encoding="utf-8"))
    values.pop("_attn_implementation", None)
    heads = hidden // HEAD_SIZE
    values.update(
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 64 * 64,  # the real model's ratio (8192 / 3072), rounded
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        torch_dtype="float32",
    )
    values["img_processor"]["image_dim_out"] = VISION_SIZES["hidden_size"]
    values["vision_config"] = dict(VISION_SIZES)
    return Phi3VConfig.from_dict(values, attn_implementation="sdpa")


def tiny_config() -> Phi3VConfig:
    return Phi3VConfig.from_pretrained(str(TINY_MODEL), attn_implementation="sdpa")


def build_model(config: Phi3VConfig, seed: int) -> Phi3VForCausalLM:
    torch.manual_seed(seed)
    return Phi3VForCausalLM(config).eval()


def image_prompt(processor: Phi3VProcessor) -> dict[str, torch.Tensor]:
    """The chat prompt with one deterministic 320x240 image (a gradient: the values do not matter)."""
    ramp = torch.linspace(0, 255, IMAGE_SIZE[0]).to(torch.uint8)
    pixels = torch.stack([ramp.expand(IMAGE_SIZE[1], -1)] * 3, dim=-1).numpy()
    return dict(processor(PROMPT, images=[Image.fromarray(pixels)], return_tensors="pt"))


def eos_ids(model: Phi3VForCausalLM) -> list[int]:
    eos = model.generation_config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


@torch.no_grad()
def forward_loop(model, inputs: dict[str, torch.Tensor], new_tokens: int, banned: list[int]) -> list[int]:
    """The old eval's ``greedy_answer``: a full forward of the growing sequence per new token, no cache.

    ``banned`` (the eos ids) get no chance, as ``min_new_tokens`` does in ``generate``."""
    input_ids = inputs["input_ids"]
    generated: list[int] = []
    for _ in range(new_tokens):
        logits = model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=inputs.get("pixel_values"),
            image_sizes=inputs.get("image_sizes"),
            use_cache=False,
        ).logits
        last = logits[0, -1]
        last[banned] = float("-inf")
        token = int(last.argmax())
        generated.append(token)
        input_ids = torch.cat([input_ids, input_ids.new_tensor([[token]])], dim=1)
    return generated


@torch.no_grad()
def cached_generate(model, inputs: dict[str, torch.Tensor], new_tokens: int, pad_token_id: int) -> list[int]:
    output = model.generate(
        **inputs,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=pad_token_id,
        use_cache=True,
    )
    return output[0, inputs["input_ids"].shape[1] :].tolist()


def timed(function, *arguments):
    """The result, wall seconds and CPU seconds (all threads) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    result = function(*arguments)
    return result, time.perf_counter() - start, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens each side generates (default 64)")
    parser.add_argument("--num-crops", type=int, default=None,
                        help="crops of the image: the prompt's size (default 16: ~1,940 tokens; 4 with --tiny)")
    parser.add_argument("--hidden", type=int, default=384, help=f"language model width, a multiple of {HEAD_SIZE}")
    parser.add_argument("--layers", type=int, default=8, help="language model layers")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true",
                        help="fixtures/tiny-phi3v's config at num_crops 4: a smoke run of the script, not the figures")
    arguments = parser.parse_args()
    if arguments.new_tokens < 1:
        parser.error("--new-tokens must be at least 1")
    num_crops = arguments.num_crops or (4 if arguments.tiny else 16)
    threads = arguments.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(threads)

    config = tiny_config() if arguments.tiny else mid_size_config(arguments.hidden, arguments.layers)
    model = build_model(config, arguments.seed)
    processor = Phi3VProcessor.from_pretrained(str(REAL_MODEL_FILES), num_crops=num_crops)
    inputs = image_prompt(processor)
    prompt_tokens = inputs["input_ids"].shape[1]
    image_tokens = int((inputs["input_ids"] < 0).sum())
    parameters = sum(parameter.numel() for parameter in model.parameters())
    pad = processor.tokenizer.pad_token_id

    print("# phi3v-train eval speed: cached generate vs one forward per token")
    print(f"torch {torch.__version__}, {threads} thread(s) of {os.cpu_count()} cores, CPU, fp32, sdpa, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    if arguments.tiny:
        print("--tiny: the tiny test model; a smoke run of the script, the figures mean nothing")
    print(f"model: {'tiny-phi3v' if arguments.tiny else 'mid-size'} random weights (seed {arguments.seed}), "
          f"{parameters / 1e6:.1f}M parameters: LM {config.hidden_size} wide x {config.num_hidden_layers} layers "
          f"(MLP {config.intermediate_size}), CLIP {config.vision_config.hidden_size} wide x "
          f"{config.vision_config.num_hidden_layers} layers, vocabulary {config.vocab_size:,}")
    print(f"prompt: {prompt_tokens:,} tokens ({image_tokens:,} of one {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image at "
          f"num_crops {num_crops}), {arguments.new_tokens} new tokens, greedy")

    # One forward pass each way first: allocator and kernel warm-up is nobody's cost.
    forward_loop(model, inputs, 1, eos_ids(model))
    cached_generate(model, inputs, 1, pad)
    # Other work on the machine slows the wall times down (CPU seconds move less); the ratio is of wall times.
    load_before = os.getloadavg()[0]
    loop_tokens, loop_seconds, loop_cpu = timed(forward_loop, model, inputs, arguments.new_tokens, eos_ids(model))
    generate_tokens, generate_seconds, generate_cpu = timed(cached_generate, model, inputs, arguments.new_tokens, pad)

    count = arguments.new_tokens
    print(f"\n{'method':<44} {'seconds':>9} {'tokens/s':>10} {'s/token':>9} {'CPU s':>8}")
    for name, seconds, cpu in (
        ("loop: full forward per token, no cache", loop_seconds, loop_cpu),
        ("generate: KV cache (native model)", generate_seconds, generate_cpu),
    ):
        print(f"{name:<44} {seconds:>9.2f} {count / seconds:>10.2f} {seconds / count:>9.3f} {cpu:>8.2f}")
    print(f"load average before the timed runs {load_before:.2f}, after {os.getloadavg()[0]:.2f} "
          f"(this run itself adds up to {threads})")
    ratio = loop_seconds / generate_seconds
    if loop_tokens != generate_tokens:
        first = next(index for index, (a, b) in enumerate(zip(loop_tokens, generate_tokens)) if a != b)
        print(f"the two methods DIFFER from new token {first}: loop {loop_tokens[first:first + 8]}, "
              f"generate {generate_tokens[first:first + 8]}")
        return 1
    print(f"both gave the same {count} tokens")
    print(f"speed-up of cached generate: {ratio:.2f}x (target >= {TARGET:.0f}x"
          f"{'' if arguments.tiny else ', ' + ('met' if ratio >= TARGET else 'NOT met')})")
    print(f"RATIO cached-generate {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
