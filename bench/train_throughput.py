"""Training images/s, tokens/s and peak GPU memory of one training mode on one GPU, next to the cookbook's.

    python bench/train_throughput.py --mode lora                        # full-size model, one GPU
    python bench/train_throughput.py --mode qlora --attn sdpa --steps 20
    OMP_NUM_THREADS=1 python bench/train_throughput.py --mode lora --tiny   # CPU smoke run: seconds

The model is the FULL-SIZE Phi-3.5-vision architecture (``fixtures/phi35v/config.json``: 32 layers of
3072, CLIP ViT-L/14-336) with random weights, so nothing is downloaded. It goes through the trainer's
own loading code: the random model is saved (bf16) with the tokenizer and processor files into a
temporary folder, then :func:`phi3v_train.model.load_model` loads it with the attention kernel and
precision :func:`~phi3v_train.hardware.resolve_numerics` picks (``--mode qlora``: quantized to 4-bit
NF4 by bitsandbytes while loading, exactly as training quantizes), and
:func:`~phi3v_train.model.prepare_for_mode` freezes or adds the adapters. The step is the trainer's:
non-reentrant activation checkpointing, AdamW (lr 4e-5, betas 0.9/0.95, eps 1e-7, weight decay 0.01),
gradient clipping at 1.0, autocast in the run's precision (bf16), micro-batch 1.

The sample is DocVQA-like: one deterministic 1700x2200 page (black text lines on white) at
``num_crops`` 16 with a question and answer, made into a batch by the trainer's
:class:`~phi3v_train.data.Phi3VCollator`, so the tokens are what training feeds (~2,530; the cookbook's
DocVQA average is 2,443). The same batch is fed every step: data loading is not timed (see
``bench/train_data.py`` for that). Warm-up steps, then timed steps between ``torch.cuda.synchronize()``.

The cookbook's figures (Phi-3 cookbook, "Speed benchmarking", Phi-3-vision on DocVQA, 8x A100-80GB,
DeepSpeed ZeRO-2 for the full modes) are divided by 8 for a per-GPU figure; the ratio compares with the
row of the same attention (flash-attention, or not). Its peak memory is with ZeRO-2 sharding the
optimizer over 8 GPUs, so a single GPU's full fine-tune needs more. The last line is
``RESULT mode=... attn=... images_per_s=... tokens_per_s=... peak_gib=... cookbook_ratio=...``.

``--tiny`` runs the same code on the CPU with ``fixtures/tiny-phi3v``'s configuration (fp32, sdpa,
a 850x1100 page at ``num_crops`` 4, 1 warm-up and 2 timed steps): a test of the script, whose
figures mean nothing. Without ``--tiny`` the script needs a CUDA GPU and exits 2 on a machine without.

``--packing`` and ``--group-by-length`` measure batching instead, on a length-skewed set: half the
records one 320x240 image at ``num_crops`` 1 (~330 tokens), half nine such frames (~2,900 tokens), in
micro-batches of 4 (``--micro-batch-size``). The baseline, timed in the same run on the same records,
is right-padded micro-batches in a random order; the candidate packs each micro-batch
(``phi3v_train.packing``) and/or orders records by length (transformers' ``LengthGroupedSampler`` over
the exact counts). The figure is non-padding tokens/s; the last line ``RATIO packing <x>`` (or
``RATIO group-by-length <x>``). ``python bench/train_throughput.py --tiny --packing`` runs it on the CPU
with the tiny model in about a minute.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FULL_SIZE = REPO_ROOT / "fixtures" / "phi35v"
TINY = REPO_ROOT / "fixtures" / "tiny-phi3v"
PROCESSOR_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "preprocessor_config.json", "processor_config.json",
)  # fmt: skip
MODES = ("full", "frozen-vision", "lora", "qlora")
QUESTION = "What is the date mentioned in this letter?"
ANSWER = "1/8/93"
GPUS_IN_COOKBOOK = 8
# The cookbook's 8x A100-80GB table: (img/s of all 8 GPUs, peak GB per GPU), with and without flash-attention.
COOKBOOK = {
    "flash": {"full": (8.657, 36), "frozen-vision": (31.736, 27), "lora": (12.127, 16), "qlora": (10.545, 10)},
    "no-flash": {"full": (5.041, 42), "frozen-vision": (17.578, 29), "lora": (5.591, 50), "qlora": (4.831, 32)},
}
COOKBOOK_TOKENS = 2443.23  # its DocVQA samples' average length at num_crops 16
LEARNING_RATE = 4e-5


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None


def render_page(size: tuple[int, int]):
    """A deterministic document page: black lines of text on white, a letter-like layout."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=max(10, height // 70))
    margin, line_height = width // 12, max(12, height // 48)
    words = "the quarterly report of the research committee dated january eighth 1993 lists".split()
    for line, top in enumerate(range(margin, height - margin, line_height)):
        count = 6 + (line * 7) % 6
        text = " ".join(words[(line + index) % len(words)] for index in range(count))
        draw.text((margin, top), text.capitalize(), fill="black", font=font)
    return page


def write_model_folder(folder: Path, config_dir: Path, device: str, dtype, seed: int) -> None:
    """A random-weight model of ``config_dir``'s architecture saved as a checkpoint, with its processor files."""
    import torch

    from phi3v_train import Phi3VConfig, Phi3VForCausalLM

    config = Phi3VConfig.from_pretrained(str(config_dir))
    torch.manual_seed(seed)
    with torch.device(device):
        model = Phi3VForCausalLM._from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.save_pretrained(str(folder))
    del model
    if device != "cpu":
        torch.cuda.empty_cache()
    for name in PROCESSOR_FILES:
        shutil.copyfile(config_dir / name, folder / name)


def docvqa_batch(model_folder: Path, processor, page_size: tuple[int, int]) -> dict:
    """The trainer's batch for one DocVQA-like record: its collator (the prompt builder of the model's
    tokenizer files, the model's image processor) on a rendered page."""
    from phi3v_data.format import Record
    from phi3v_data.prompt import PromptBuilder
    from phi3v_train.data import DatasetRecord, Phi3VCollator

    record = Record.model_validate(
        {
            "id": "bench-0",
            "source": "bench",
            "conversations": [{"images": ["page.png"], "user": QUESTION, "assistant": ANSWER}],
        }
    )
    entry = DatasetRecord(record, model_folder.parent / "images", "bench:1")  # the page is rendered, not read
    collator = Phi3VCollator.for_processor(PromptBuilder.from_model_dir(model_folder), processor)
    return collator([{"entry": entry, "images": [render_page(page_size)]}])


def skewed_examples(model_folder: Path, count: int) -> list[dict]:
    """Dataset items for ``count`` records, alternately one frame (~330 tokens) and nine (~2,900)."""
    from PIL import Image

    from phi3v_data.format import Record
    from phi3v_train.data import DatasetRecord

    examples = []
    for index in range(count):
        frames = 1 if index % 2 == 0 else 9
        record = Record.model_validate(
            {
                "id": f"bench-{index}",
                "source": "bench",
                "conversations": [
                    {"images": [f"f{frame}.jpg" for frame in range(frames)], "user": "What happens?", "assistant": "A dance."}
                ],
            }
        )
        images = [Image.new("RGB", (320, 240), (20 * frame, 90, 160)) for frame in range(frames)]
        examples.append({"entry": DatasetRecord(record, model_folder / "images", f"bench:{index + 1}"), "images": images})
    return examples


def compare_batching(model, collator, examples, micro_batch: int, packing: bool, grouping: bool, optimizer, autocast, device):
    """Non-padding tokens/s of padded random-order micro-batches and of the candidate batching, same records."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from phi3v_train.packing import PackingCollator

    lengths = [len(collator.encode(example["entry"], example["images"])["input_ids"]) for example in examples]
    generator = torch.Generator().manual_seed(0)
    random_order = torch.randperm(len(examples), generator=generator).tolist()
    grouped_order = list(LengthGroupedSampler(micro_batch, lengths=lengths, generator=generator)) if grouping else random_order
    candidate_collate = PackingCollator(collator, None) if packing else collator

    def run(order, collate) -> tuple[float, int, int]:
        batches = [collate([examples[i] for i in order[start : start + micro_batch]]) for start in range(0, len(order), micro_batch)]
        train_step(model, {key: value.to(device) for key, value in batches[0].items()}, optimizer, autocast)  # warm-up
        positions = sum(batch["input_ids"].numel() for batch in batches)
        started = time.perf_counter()
        for batch in batches:
            train_step(model, {key: value.to(device) for key, value in batch.items()}, optimizer, autocast)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started, positions, sum(lengths)

    results = {"padded, random order": run(random_order, collator)}
    name = " + ".join(["packed"] * packing + ["grouped by length"] * grouping)
    results[name] = run(grouped_order, candidate_collate)
    print(f"{len(examples)} records of {min(lengths):,} to {max(lengths):,} tokens ({sum(lengths):,} in all), "
          f"micro-batches of {micro_batch}")
    print(f"{'batching':<34} {'seconds':>8} {'positions':>10} {'real tokens/s':>14}")
    for label, (seconds, positions, real) in results.items():
        print(f"{label:<34} {seconds:>8.2f} {positions:>10,} {real / seconds:>14.0f}")
    (base_seconds, _, _), (candidate_seconds, _, _) = results.values()
    return base_seconds / candidate_seconds


def train_step(model, batch, optimizer, autocast) -> float:
    import torch

    with autocast():
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def enable_activation_checkpointing(model) -> None:
    """As the trainer's ``activation_checkpointing=True, activation_checkpointing_kwargs={"use_reentrant": False}``."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="lora")
    parser.add_argument("--attn", choices=("eager", "sdpa", "flash_attention_2"), default=None,
                        help="attention kernel (default: flash_attention_2 where it runs, else sdpa)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; 2 with --tiny)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; 1 with --tiny)")
    parser.add_argument("--num-crops", type=int, default=None, help="crops of the page (default 16; 4 with --tiny)")
    parser.add_argument("--page-size", type=parse_size, default=None,
                        help="WxH of the page (default 1700x2200; 850x1100 with --tiny)")
    parser.add_argument("--lora-rank", type=int, default=None, help="LoRA rank (default: the trainer's, 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary checkpoint goes (~8 GB bf16)")
    parser.add_argument("--packing", action="store_true", help="measure packed against padded micro-batches")
    parser.add_argument("--group-by-length", action="store_true", help="measure a length-grouped against a random order")
    parser.add_argument("--micro-batch-size", type=int, default=4, help="records per micro-batch (batching runs)")
    parser.add_argument("--records", type=int, default=16, help="records of the batching runs")
    parser.add_argument("--tiny", action="store_true",
                        help="CPU, fixtures/tiny-phi3v's config, fp32: a smoke run of the script, figures meaningless")
    arguments = parser.parse_args()
    tiny = arguments.tiny
    steps = arguments.steps or (2 if tiny else 10)
    warmup = arguments.warmup if arguments.warmup is not None else (1 if tiny else 2)
    num_crops = arguments.num_crops or (4 if tiny else 16)
    page_size = arguments.page_size or ((850, 1100) if tiny else (1700, 2200))

    import torch

    from phi3v_data.errors import UsageError
    from phi3v_train.hardware import Hardware, resolve_numerics

    # --tiny runs on the CPU even where a GPU is present: the same code path, in seconds.
    hardware = Hardware(cuda=False) if tiny else Hardware.detect()
    if not hardware.cuda and not tiny:
        print("bench/train_throughput.py measures the full-size model on a CUDA GPU and this machine has none; "
              "run it on a GPU machine, or add --tiny for a CPU smoke run of the script", file=sys.stderr)
        return 2
    try:
        numerics = resolve_numerics("sdpa" if tiny and arguments.attn is None else arguments.attn, None, hardware)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    device = "cuda" if hardware.cuda else "cpu"

    from phi3v_train.config import TrainConfig
    from phi3v_train.model import load_model, load_processor, parameter_counts, prepare_for_mode
    from phi3v_train.trainer import _device_map  # where training places the model (QLoRA: quantized onto it)

    if not hardware.cuda:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1)

    print(f"# phi3v-train training throughput: --mode {arguments.mode}")
    print(f"torch {torch.__version__}, {hardware.device_name}, attention {numerics.attn}, {numerics.precision}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    for note in numerics.notes:
        print(note)
    if tiny:
        print("--tiny: the tiny test model on the CPU; a smoke run of the script, the figures mean nothing")

    with tempfile.TemporaryDirectory(prefix="phi3v-throughput-", dir=arguments.workdir) as temporary:
        folder = Path(temporary) / "model"
        started = time.perf_counter()
        saved_dtype = torch.float32 if tiny else torch.bfloat16  # the official checkpoint's dtype
        write_model_folder(folder, TINY if tiny else FULL_SIZE, device, saved_dtype, arguments.seed)
        config = TrainConfig(
            data=[Path(temporary)], model=str(folder), mode=arguments.mode, output_dir=Path(temporary) / "out",
            **({"lora_rank": arguments.lora_rank} if arguments.lora_rank else {}),
        )
        torch.manual_seed(arguments.seed)  # the LoRA initialisation draws from it
        quantize = arguments.mode == "qlora"
        model = load_model(folder, numerics, quantize_4bit=quantize, device_map=_device_map(config, hardware))
        model = prepare_for_mode(model, config)
        if arguments.mode != "qlora":
            model.to(device)  # what the Trainer does with a model loaded without a device map
        model.train()
        enable_activation_checkpointing(model)
        if not getattr(model, "is_activation_checkpointing", False):
            print("activation checkpointing did not turn on", file=sys.stderr)
            return 1
        trainable, total = parameter_counts(model)
        # bitsandbytes' own layers (PEFT's LoRA wrappers around them are named Linear4bit too).
        four_bit = sum(
            type(module).__name__ == "Linear4bit" and type(module).__module__.startswith("bitsandbytes")
            for module in model.modules()
        )
        if (arguments.mode == "qlora") != bool(four_bit):
            print(f"--mode {arguments.mode} but {four_bit} 4-bit layers after loading", file=sys.stderr)
            return 1
        print(f"model: {'tiny-phi3v' if tiny else 'Phi-3.5-vision (full size)'} random weights, "
              f"{trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%), "
              f"saved and loaded in {time.perf_counter() - started:.0f} s"
              + (f", {four_bit} linear layers in 4-bit NF4" if four_bit else ""))

        optimizer = torch.optim.AdamW(
            [parameter for parameter in model.parameters() if parameter.requires_grad],
            lr=LEARNING_RATE, betas=(0.9, 0.95), eps=1e-7, weight_decay=0.01,
        )  # fmt: skip
        if hardware.cuda:
            dtype = getattr(torch, numerics.compute_dtype_name)
            autocast = lambda: torch.autocast("cuda", dtype=dtype)  # noqa: E731
            torch.cuda.reset_peak_memory_stats()
        else:
            autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731

        if arguments.packing or arguments.group_by_length:
            from phi3v_data.prompt import PromptBuilder
            from phi3v_train.data import Phi3VCollator

            collator = Phi3VCollator.for_processor(PromptBuilder.from_model_dir(folder), load_processor(folder, 1))
            ratio = compare_batching(
                model, collator, skewed_examples(folder, arguments.records), arguments.micro_batch_size,
                arguments.packing, arguments.group_by_length, optimizer, autocast, device,
            )  # fmt: skip
            print(f"RATIO {'packing' if arguments.packing else 'group-by-length'} {ratio:.2f}")
            return 0

        processor = load_processor(folder, num_crops)
        batch = docvqa_batch(folder, processor, page_size)
        tokens = int(batch["attention_mask"].sum())
        print(f"sample: one {page_size[0]}x{page_size[1]} page at num_crops {num_crops}, {tokens:,} tokens "
              f"({int((batch['input_ids'] < 0).sum()):,} image, {int((batch['labels'] >= 0).sum())} trained); "
              "cookbook's DocVQA average 2,443")
        batch = {key: value.to(device) for key, value in batch.items()}

        for _ in range(warmup):
            train_step(model, batch, optimizer, autocast)
        if hardware.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = [train_step(model, batch, optimizer, autocast) for _ in range(steps)]
        if hardware.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start

    if hardware.cuda:
        peak_gib = torch.cuda.max_memory_allocated() / 2**30
        memory_name = "peak GPU memory allocated"
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        memory_name = "peak resident memory (CPU; not comparable)"
    images_per_s = steps / seconds
    tokens_per_s = steps * tokens / seconds
    row = "flash" if numerics.attn == "flash_attention_2" else "no-flash"
    cookbook_images, cookbook_gb = COOKBOOK[row][arguments.mode]
    cookbook_per_gpu = cookbook_images / GPUS_IN_COOKBOOK
    ratio = images_per_s / cookbook_per_gpu
    if not all(torch.isfinite(torch.tensor(losses))):
        print(f"the loss is not finite: {losses}")
        return 1

    print(f"\n{warmup} warm-up step(s), then {steps} timed step(s) in {seconds:.2f} s; "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"{'':<34} {'images/s':>9} {'tokens/s':>9} {'peak GiB':>9}")
    measured = f"measured (this {'GPU' if hardware.cuda else 'CPU'})"
    print(f"{measured:<34} {images_per_s:>9.3f} {tokens_per_s:>9.0f} {peak_gib:>9.2f}")
    print(f"{'cookbook per A100 (' + row + ')':<34} {cookbook_per_gpu:>9.3f} {cookbook_per_gpu * COOKBOOK_TOKENS:>9.0f} "
          f"{cookbook_gb:>8}*")
    print(f"{memory_name}; the cookbook's tokens/s is its img/s x 2,443 tokens (its DocVQA average); "
          "* its GB, with DeepSpeed ZeRO-2 over 8 GPUs for full and frozen-vision")
    print(f"measured / cookbook images/s: {ratio:.2f}x" + (" (--tiny: meaningless)" if tiny else ""))
    print(f"RESULT mode={arguments.mode} attn={numerics.attn} images_per_s={images_per_s:.4f} "
          f"tokens_per_s={tokens_per_s:.1f} peak_gib={peak_gib:.2f} cookbook_ratio={ratio:.3f}"
          + (" tiny=1" if tiny else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
