"""Golden numbers from the PUBLIC Phi-3.5-vision remote code, for testing our native classes.

What it writes:

- ``<model-dir>/model.safetensors``: seeded random float32 weights of the tiny model described by
  ``<model-dir>/config.json``, named as in the official ``microsoft/Phi-3.5-vision-instruct``
  checkpoint (CLIP tower under ``img_processor.vision_model.``, no ``vision_embed_tokens.wte``).
- ``<out>/goldens.safetensors`` and ``<out>/cases.json``: what the public processor and model
  produce on the committed test images (``<out>/images/``): token ids, pixel values (whole or as
  sums and samples), logits summaries, losses and greedy continuations. ``cases.json`` says, for
  every case, its inputs and which tensor holds which field (tensor names are ``<case>.<field>``).

Why: our native re-implementation must match what the public code computes, but that code is
never copied into this repository (not even as a fixture). So it is read from a folder given on
the command line, run here, and only its numbers are committed.

The public code: ``configuration_phi3_v.py``, ``modeling_phi3_v.py`` and ``processing_phi3_v.py``
as published with microsoft/Phi-3.5-vision-instruct; the copy used is GitHub
``2U1/Phi3-Vision-Finetune`` at commit ``9e1a5e60d694d05ede9865894530fb758a421e3d``, path
``src/model/Phi3_5_vision/`` (``PUBLIC_CODE_ORIGIN``). The three files are copied into a temporary
package with a few asserted source substitutions (``SOURCE_PATCHES``, each explained there) and
imported from there; nothing is written next to them.

Run from the repository root, with transformers 5.23.0 installed apart from the project's
environment (the public code no longer imports on 5.24+):

    pip install --no-deps --target /tmp/tf523 transformers==5.23.0
    PYTHONPATH=/tmp/tf523 OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 \\
        python scripts/make_phi3v_goldens.py --public-code /path/to/Phi3_5_vision

Add ``--make-images SCIKIT_IMAGE_WHEEL`` to (re)write the test images first (three photos cut
from two of scikit-image's bundled pictures, one rendered document page); normally the committed images are
used as they are. Versions the committed goldens were made with: see ``<out>/cases.json``
("environment") and ``<out>/README.md``. The run is deterministic (single-threaded CPU, float32,
fixed seeds): running it twice gives byte-identical outputs.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import platform
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("fixtures/golden/phi3v")
DEFAULT_MODEL_DIR = Path("fixtures/tiny-phi3v")

# The public modeling file imports transformers.modeling_attn_mask_utils, a module that
# transformers 5.24 removed; the goldens are made with (and record) this one version.
REQUIRED_TRANSFORMERS = "5.23.0"

PUBLIC_CODE_ORIGIN = {
    "repo": "2U1/Phi3-Vision-Finetune",
    "commit": "9e1a5e60d694d05ede9865894530fb758a421e3d",
    "path": "src/model/Phi3_5_vision/",
    "same_as": "the remote code published with microsoft/Phi-3.5-vision-instruct",
}
PUBLIC_FILES = ("configuration_phi3_v.py", "modeling_phi3_v.py", "processing_phi3_v.py")
PACKAGE = "phi3v_public_reference"

SEED = 0
WEIGHT_STD = 0.2  # every weight, bias, separator and embedding: N(0, 0.2)
NORM_STD = 0.05  # every LayerNorm/RMSNorm weight: 1 + N(0, 0.05)
PAD_ID = 32000  # <|endoftext|>, the tokenizer's and config's pad id
SAMPLED_PIXELS = 4096
GREEDY_NEW_TOKENS = 12

# modeling_phi3_v.py hard-codes this CLIP ViT-L/14-336 config (CLIP_VIT_LARGE_PATCH14_336_CONFIG);
# config.json's "vision_config" overrides some of its keys for the tiny tower.
CLIP_VIT_L14_336 = {
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": 1024,
    "image_size": 336,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "num_attention_heads": 16,
    "num_channels": 3,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
}

# (file, old, new, why). Each `old` must occur exactly once in the public file.
SOURCE_PATCHES = (
    (
        "modeling_phi3_v.py",
        "C == 1024",
        "C == self.image_dim_out",
        "reshape_hd_patches_2x2merge asserts the CLIP-L width (1024); the tiny tower is "
        "img_processor.image_dim_out wide",
    ),
    (
        "modeling_phi3_v.py",
        "torch.zeros(1, 1921, 4096,",
        "torch.zeros(1, 1921, 4 * self.vision_embed_tokens.image_dim_out,",
        "the text-only path runs img_projection on a dummy input 4 * 1024 wide (so that every "
        "parameter takes part in the graph); the tiny projection takes 4 * image_dim_out",
    ),
)

# --- test images ------------------------------------------------------------------------------

IMAGES = {
    "astronaut": "astronaut.png",  # 256x256, square: not transposed, no padding at 1/4/16 crops
    "portrait": "coffee_portrait.png",  # 180x300, taller than wide: the transposed HD path
    "wide": "coffee_wide.png",  # 300x120, wider than tall: a 1x2 crop grid (h x w) at 4, top/bottom padding
    "document": "document.png",  # 1700x2200 grayscale page: 16 crops, padding, L -> RGB
}


def make_images(wheel: Path, images_dir: Path) -> None:
    """Write the test images: photos from a scikit-image wheel, the page rendered here."""
    images_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        with archive.open("skimage/data/astronaut.png") as f:
            astronaut = Image.open(f).convert("RGB")  # 512x512, NASA, public domain
        with archive.open("skimage/data/coffee.png") as f:
            coffee = Image.open(f).convert("RGB")  # 600x400, Rachel Michetti, CC0
    astronaut.resize((256, 256), Image.Resampling.LANCZOS).save(images_dir / IMAGES["astronaut"], optimize=True)
    small = coffee.resize((300, 200), Image.Resampling.LANCZOS)
    # Portrait: the 300x200 picture turned on its side (200x300), cut to 180 wide.
    small.transpose(Image.Transpose.ROTATE_90).crop((10, 0, 190, 300)).save(
        images_dir / IMAGES["portrait"], optimize=True
    )
    small.crop((0, 40, 300, 160)).save(images_dir / IMAGES["wide"], optimize=True)
    render_document().save(images_dir / IMAGES["document"], optimize=True)


def render_document() -> Image.Image:
    """A deterministic 1700x2200 (8.5x11 in at 200 dpi) grayscale page: text lines and a table."""
    page = Image.new("L", (1700, 2200), 255)
    draw = ImageDraw.Draw(page)
    draw.fontmode = "1"  # no anti-aliasing: crisp black-on-white text, and a small PNG
    title = ImageFont.load_default(size=48)
    body = ImageFont.load_default(size=26)
    draw.text((120, 110), "Quarterly Report: Harbour Logistics", font=title, fill=0)
    words = ("shipment", "container", "berth", "crane", "manifest", "customs", "tonnage", "vessel")
    y = 230
    for line in range(14):
        text = " ".join(f"{words[(line * 3 + k) % len(words)]}-{(line * 37 + k * 11) % 100}" for k in range(9))
        draw.text((120, y), f"{line + 1:2d}. {text}", font=body, fill=30)
        y += 42
    # A 6-column table with a header row and 12 body rows.
    left, top, cell_w, cell_h, cols, rows = 120, 900, 243, 64, 6, 13
    for r in range(rows + 1):
        draw.line((left, top + r * cell_h, left + cols * cell_w, top + r * cell_h), fill=0, width=3 if r < 2 else 1)
    for c in range(cols + 1):
        draw.line((left + c * cell_w, top, left + c * cell_w, top + rows * cell_h), fill=0, width=2)
    header = ("Month", "Vessels", "Containers", "Tonnage", "Delays", "Total")
    for c, name in enumerate(header):
        draw.text((left + c * cell_w + 16, top + 16), name, font=body, fill=0)
    for r in range(1, rows):
        values = [f"M{r:02d}"] + [str((r * 131 + c * 977) % 9000 + 100) for c in range(1, cols)]
        for c, value in enumerate(values):
            draw.text((left + c * cell_w + 16, top + r * cell_h + 16), value, font=body, fill=40)
    draw.text((120, 1800), "Totals are in thousands; delays are in hours.", font=body, fill=30)
    draw.text((780, 2100), "- 1 -", font=body, fill=60)
    return page


# --- loading the public code ------------------------------------------------------------------


def check_transformers() -> str:
    import transformers

    if transformers.__version__ != REQUIRED_TRANSFORMERS:
        sys.exit(
            f"transformers {transformers.__version__} found, {REQUIRED_TRANSFORMERS} needed: the "
            f"public code does not import on 5.24+, and the goldens must name one version. "
            f"Install it apart (pip install --no-deps --target DIR transformers=="
            f"{REQUIRED_TRANSFORMERS}) and put DIR on PYTHONPATH."
        )
    return transformers.__version__


def import_public_code(folder: Path, package_root: Path):
    """Copy the public files into a temporary package, patch them, import them."""
    package = package_root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    sources = {name: (folder / name).read_text() for name in PUBLIC_FILES}
    for name, old, new, why in SOURCE_PATCHES:
        count = sources[name].count(old)
        if count != 1:
            raise RuntimeError(f"patch for {name} ({why}): {old!r} occurs {count} times, expected once")
        sources[name] = sources[name].replace(old, new)
    for name, text in sources.items():
        (package / name).write_text(text)
    sys.path.insert(0, str(package_root))
    try:
        configuration = importlib.import_module(f"{PACKAGE}.configuration_phi3_v")
        modeling = importlib.import_module(f"{PACKAGE}.modeling_phi3_v")
        processing = importlib.import_module(f"{PACKAGE}.processing_phi3_v")
    finally:
        sys.path.remove(str(package_root))
    return configuration, modeling, processing


def build_model(configuration, modeling, config: dict):
    """The public Phi3VForCausalLM for `config`, eager attention, float32, eval mode."""
    from transformers import CLIPVisionConfig

    # Patch 1 (not a source edit): the tower is built from the module constant, which is CLIP-L;
    # replace it by CLIP-L updated with config.json's "vision_config". Eager attention there too
    # (transformers 5 would pick sdpa for a bare CLIPVisionConfig), so that the goldens are plain
    # matmul-softmax-matmul everywhere.
    if not isinstance(getattr(modeling, "CLIP_VIT_LARGE_PATCH14_336_CONFIG", None), CLIPVisionConfig):
        raise RuntimeError("modeling_phi3_v.CLIP_VIT_LARGE_PATCH14_336_CONFIG is not a CLIPVisionConfig")
    modeling.CLIP_VIT_LARGE_PATCH14_336_CONFIG = CLIPVisionConfig(
        **{**CLIP_VIT_L14_336, **config["vision_config"]}, attn_implementation="eager"
    )
    # A copy: transformers 5 adds rope_theta and rope_type to the rope_scaling dict in place, and
    # the public config then refuses it (it wants exactly three keys) the next time.
    phi3v_config = configuration.Phi3VConfig(**copy.deepcopy(config))
    model = modeling.Phi3VForCausalLM._from_config(phi3v_config, attn_implementation="eager", dtype=torch.float32)
    tower = model.model.vision_embed_tokens.img_processor
    assert model.config._attn_implementation == "eager" and tower.config._attn_implementation == "eager"
    assert model.model.vision_embed_tokens.wte is model.model.embed_tokens
    assert model.lm_head.weight is not model.model.embed_tokens.weight  # tie_word_embeddings false
    return model.eval()


# --- weights ----------------------------------------------------------------------------------

TOWER = "model.vision_embed_tokens.img_processor."
SHARED_EMBEDDING = "model.vision_embed_tokens.wte.weight"  # is model.embed_tokens.weight


def is_norm_weight(name: str) -> bool:
    return name.endswith(".weight") and any(k in name for k in ("norm", "layrnorm", "layer_norm"))


def randomize(model) -> None:
    """Give every parameter seeded random values, so that every part of the model matters.

    The public init leaves the separators (glb_GN, sub_GN) at zero and the norms at one; a test
    against such weights would not see them. Parameters are drawn in sorted-name order.
    """
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.copy_(1.0 + NORM_STD * noise if is_norm_weight(name) else WEIGHT_STD * noise)


def official_name(name: str) -> str:
    # transformers 5's CLIPVisionModel has no `vision_model.` level; the checkpoint (and
    # transformers 4) have it.
    if name.startswith(TOWER):
        return TOWER + "vision_model." + name[len(TOWER):]
    return name


def official_state_dict(model) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    assert state[SHARED_EMBEDDING].data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    return {
        official_name(k): v.detach().float().contiguous().clone() for k, v in state.items() if k != SHARED_EMBEDDING
    }


def load_official(model, tensors: dict[str, torch.Tensor]) -> None:
    """Load a checkpoint in the official layout into the public model (strict)."""
    local = {k.replace(TOWER + "vision_model.", TOWER): v for k, v in tensors.items()}
    local[SHARED_EMBEDDING] = local["model.embed_tokens.weight"]
    model.load_state_dict(local, strict=True)
    assert model.model.vision_embed_tokens.wte is model.model.embed_tokens


# --- processor --------------------------------------------------------------------------------


class Processors:
    """The public Phi3VProcessor, one per num_crops (num_crops is an image-processor setting)."""

    def __init__(self, processing, model_dir: Path):
        from transformers import AutoTokenizer

        self.processing = processing
        self.model_dir = model_dir
        # trust_remote_code=False: the folder's auto_map must not pull code in. Transformers 5
        # loads phi3_v tokenizers as TokenizersBackend (tokenizer.json as it is, like the
        # LlamaTokenizerFast of transformers 4), not as LlamaTokenizer (which would rebuild the
        # pre-tokenizer and drop the "▁" (29871) that tokenizer.json puts after special tokens).
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
        assert type(self.tokenizer).__name__ == "TokenizersBackend", type(self.tokenizer)
        assert self.tokenizer.pad_token_id == PAD_ID
        self._cache = {}

    def __call__(self, num_crops: int):
        if num_crops not in self._cache:
            # The public image processor class, configured by the folder's preprocessor_config.json.
            image_processor = self.processing.Phi3VImageProcessor.from_pretrained(self.model_dir, num_crops=num_crops)
            assert image_processor.num_crops == num_crops
            self._cache[num_crops] = self.processing.Phi3VProcessor(image_processor, self.tokenizer)
        return self._cache[num_crops]


def load_images(images_dir: Path, keys: list[str]) -> list[Image.Image]:
    images = []
    for key in keys:
        with Image.open(images_dir / IMAGES[key]) as image:
            image.load()
            images.append(image.copy())
    return images


def process(processors: Processors, images_dir: Path, text: str, image_keys: list[str], num_crops: int):
    """Public processor output for one prompt, plus num_img_tokens from the image processor."""
    if not image_keys:  # text only: the tokenizer alone; num_crops plays no part
        return dict(processors(1)(text)), []
    processor = processors(num_crops)
    images = load_images(images_dir, image_keys)
    inputs = dict(processor(text, images=images))
    # The processor drops num_img_tokens from its output; ask the image processor for it.
    num_img_tokens = processor.image_processor(images, return_tensors="pt")["num_img_tokens"]
    for k, count in enumerate(num_img_tokens, start=1):
        assert int((inputs["input_ids"] == -k).sum()) == count * text.count(f"<|image_{k}|>")
    return inputs, [int(n) for n in num_img_tokens]


# --- cases ------------------------------------------------------------------------------------

PHOTO = "<|user|>\n<|image_1|>\nWhat is shown in this image?<|end|>\n<|assistant|>\n"
DOCUMENT = (
    "<|user|>\n<|image_1|>\nRead the table on this page and give the total of each column.<|end|>\n<|assistant|>\n"
)
TWO_IMAGES = "<|user|>\n<|image_1|>\n<|image_2|>\nWhat do these two pictures have in common?<|end|>\n<|assistant|>\n"
TEXT_ONLY = (
    "<|system|>\nYou are a helpful assistant.<|end|>\n"
    "<|user|>\nWrite a short poem about the sea at night.<|end|>\n<|assistant|>\n"
)
SUIT = (
    "<|user|>\n<|image_1|>\nDescribe the suit, the patches on it and the background in detail.<|end|>\n<|assistant|>\n"
)
BANNER = "<|user|>\n<|image_1|>\nWhat is this?<|end|>\n<|assistant|>\n"


def filler(sentences: int) -> str:
    """Deterministic varied English, about 15 tokens a sentence (for prompts past 4096 tokens)."""
    colours = ("red", "green", "blue", "yellow", "purple", "orange", "grey")
    animals = ("fox", "heron", "otter", "badger", "falcon", "lynx", "beaver", "salmon", "wolf", "owl", "hare")
    places = ("river", "meadow", "forest", "harbour", "valley")
    return " ".join(
        f"Note {i}: the {colours[i % 7]} {animals[i % 11]} crossed the {places[i % 5]} "
        f"at {(i * 7) % 24}:{(i * 13) % 60:02d}."
        for i in range(sentences)
    )


LONG_TEXT = f"<|user|>\n{filler(215)}\nSummarise these notes.<|end|>\n<|assistant|>\n"
LONG_DOCUMENT = f"<|user|>\n<|image_1|>\n{filler(83)}\nWhich notes match the page?<|end|>\n<|assistant|>\n"

# (name, text, image keys, num_crops)
PROCESSOR_CASES = (
    ("proc_photo_c1", PHOTO, ["astronaut"], 1),
    ("proc_photo_c4", PHOTO, ["astronaut"], 4),
    ("proc_photo_c16", PHOTO, ["astronaut"], 16),
    ("proc_portrait_c4", PHOTO, ["portrait"], 4),
    ("proc_wide_c4", PHOTO, ["wide"], 4),
    ("proc_document_c4", DOCUMENT, ["document"], 4),
    ("proc_document_c16", DOCUMENT, ["document"], 16),
    ("proc_two_images_c4", TWO_IMAGES, ["astronaut", "portrait"], 4),
)

# (name, [(text, image keys) per batch row], num_crops, expected length range or None)
MODEL_CASES = (
    ("model_text_only", [(TEXT_ONLY, [])], None, None),
    ("model_photo_c1", [(PHOTO, ["astronaut"])], 1, None),
    ("model_photo_c4", [(PHOTO, ["astronaut"])], 4, None),
    ("model_document_c16", [(DOCUMENT, ["document"])], 16, None),
    ("model_two_images_c4", [(TWO_IMAGES, ["astronaut", "portrait"])], 4, None),
    ("model_padded_batch_c4", [(SUIT, ["astronaut"]), (BANNER, ["wide"])], 4, None),
    # Past original_max_position_embeddings (4096): LongRoPE switches to its long factors.
    ("model_long_text", [(LONG_TEXT, [])], None, (4400, 4700)),
    ("model_long_document_c16", [(LONG_DOCUMENT, ["document"])], 16, (4150, 4300)),
)

GREEDY_CASES = ("model_text_only", "model_photo_c1", "model_two_images_c4")

# What each field holds; written into cases.json so that the file explains itself.
FIELD_DOCS = {
    "input_ids": "int64 [B, L]: public processor ids (image k as a run of -k); batches right-padded with 32000",
    "attention_mask": "int64 [B, L]: 1 for real tokens, 0 for padding",
    "image_sizes": "int64 [images, 2]: (height, width) of each image after the HD transform and padding",
    "num_img_tokens": "int64 [images]: the image processor's token count per image",
    "pixel_values": "float32 [images, num_crops + 1, 3, 336, 336]: whole (only when <= 2 crops per image)",
    "pixel_sums": "float64 [images, num_crops + 1, 3]: float64 sum of pixel_values over each 336x336 plane",
    "pixel_sample_index": "int64 [4096]: flat indices into pixel_values "
                          "(torch.randint(0, numel, (4096,), generator=torch.Generator().manual_seed(0)))",
    "pixel_sample_values": "float32 [4096]: pixel_values.reshape(-1)[pixel_sample_index]",
    "argmax": "int64 [B, L]: argmax of the logits over the vocabulary at every position",
    "logsumexp": "float32 [B, L]: logsumexp of the logits over the vocabulary at every position",
    "logits_rows": "float32 [B, P, 32064]: whole logits at logit_positions[b] (P per row)",
    "loss": "float32 []: the public model's loss (mean shifted cross-entropy) with environment.labels",
    "new_tokens": "int64 [B, max_new_tokens]: greedy continuation of the based_on case's input_ids; "
                  "one full forward per token (use_cache=False, attention mask of ones, same pixel_values)",
}


class Goldens:
    """Collects tensors named <case>.<field> and the cases.json records."""

    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.cases: list[dict] = []

    def add(self, record: dict, field: str, tensor: torch.Tensor) -> None:
        name = f"{record['name']}.{field}"
        assert name not in self.tensors
        self.tensors[name] = tensor.detach().contiguous().clone()
        record["fields"][field] = name


def repo_paths(images_dir: Path, keys: list[str]) -> list[str]:
    return [(images_dir / IMAGES[k]).resolve().relative_to(REPO_ROOT).as_posix() for k in keys]


def pixel_fields(goldens: Goldens, record: dict, pixel_values: torch.Tensor) -> None:
    """Whole pixel_values when an image has <= 2 crops, else per-crop sums and 4096 samples."""
    assert pixel_values.dtype == torch.float32
    record["pixel_values_shape"] = list(pixel_values.shape)
    if pixel_values.shape[1] <= 2:
        goldens.add(record, "pixel_values", pixel_values)
        return
    goldens.add(record, "pixel_sums", pixel_values.double().sum(dim=(3, 4)))  # [images, crops, 3]
    index = torch.randint(0, pixel_values.numel(), (SAMPLED_PIXELS,), generator=torch.Generator().manual_seed(SEED))
    goldens.add(record, "pixel_sample_index", index)
    goldens.add(record, "pixel_sample_values", pixel_values.reshape(-1)[index])


def processor_case(goldens, processors, images_dir, name, text, image_keys, num_crops) -> None:
    inputs, num_img_tokens = process(processors, images_dir, text, image_keys, num_crops)
    record = {"name": name, "kind": "processor", "texts": [text], "images": [repo_paths(images_dir, image_keys)],
              "num_crops": num_crops, "fields": {}}
    goldens.add(record, "input_ids", inputs["input_ids"])
    goldens.add(record, "attention_mask", inputs["attention_mask"])
    goldens.add(record, "image_sizes", inputs["image_sizes"])
    goldens.add(record, "num_img_tokens", torch.tensor(num_img_tokens, dtype=torch.int64))
    pixel_fields(goldens, record, inputs["pixel_values"])
    goldens.cases.append(record)
    print(f"{name}: ids {tuple(inputs['input_ids'].shape)} pixels {tuple(inputs['pixel_values'].shape)} "
          f"sizes {inputs['image_sizes'].tolist()} tokens {num_img_tokens}")


def batch_inputs(processors, images_dir, rows, num_crops):
    """Per-row public processor outputs, right-padded with PAD_ID into one batch."""
    outputs = [process(processors, images_dir, text, keys, num_crops)[0] for text, keys in rows]
    length = max(o["input_ids"].shape[1] for o in outputs)
    input_ids = torch.full((len(rows), length), PAD_ID, dtype=torch.int64)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.int64)
    for i, o in enumerate(outputs):
        n = o["input_ids"].shape[1]
        input_ids[i, :n] = o["input_ids"][0]
        attention_mask[i, :n] = o["attention_mask"][0]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    with_images = [o for o in outputs if "pixel_values" in o]
    if with_images:
        assert len(with_images) == len(outputs), "a batch mixes rows with and without images"
        batch["pixel_values"] = torch.cat([o["pixel_values"] for o in outputs])
        batch["image_sizes"] = torch.cat([o["image_sizes"] for o in outputs])
    return batch


def logit_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
    """Per row: the middle of the last image's run of ids (of the text if none), the last real token.

    Two rows of 32064 float32 logits a batch row keep the goldens small; argmax and logsumexp
    cover every position.
    """
    positions = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
        last = max(i for i, m in enumerate(mask) if m)
        image_positions = [i for i, t in enumerate(ids) if t == min(ids)] if min(ids) < 0 else []
        middle = image_positions[len(image_positions) // 2] if image_positions else last // 2
        positions.append([middle, last])
    return positions


def labels_for(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return torch.where((input_ids >= 0) & (attention_mask == 1), input_ids, torch.full_like(input_ids, -100))


def forward(model, batch: dict, labels=None):
    """One public forward pass. input_ids is cloned: the model clamps image ids in place."""
    extra = {k: batch[k] for k in ("pixel_values", "image_sizes") if k in batch}
    with torch.no_grad():
        return model(input_ids=batch["input_ids"].clone(), attention_mask=batch["attention_mask"],
                     labels=labels, use_cache=False, return_dict=True, **extra)


def model_case(goldens, model, processors, images_dir, name, rows, num_crops, length_range) -> dict:
    batch = batch_inputs(processors, images_dir, rows, num_crops)
    if length_range is not None:
        assert length_range[0] <= batch["input_ids"].shape[1] <= length_range[1], batch["input_ids"].shape
    out = forward(model, batch, labels=labels_for(batch["input_ids"], batch["attention_mask"]))
    logits = out.logits
    assert logits.dtype == torch.float32
    positions = logit_positions(batch["input_ids"], batch["attention_mask"])
    record = {"name": name, "kind": "model", "texts": [t for t, _ in rows],
              "images": [repo_paths(images_dir, keys) for _, keys in rows], "num_crops": num_crops,
              "fields": {}, "logit_positions": positions}
    goldens.add(record, "input_ids", batch["input_ids"])
    goldens.add(record, "attention_mask", batch["attention_mask"])
    if "image_sizes" in batch:
        goldens.add(record, "image_sizes", batch["image_sizes"])
    goldens.add(record, "argmax", logits.argmax(dim=-1))
    goldens.add(record, "logsumexp", torch.logsumexp(logits, dim=-1))
    rows_logits = torch.stack([logits[i, p] for i, p in enumerate(positions)])  # [B, P, vocab]
    goldens.add(record, "logits_rows", rows_logits)
    goldens.add(record, "loss", out.loss.float())
    goldens.cases.append(record)
    print(f"{name}: ids {tuple(batch['input_ids'].shape)} loss {out.loss.item():.6f} positions {positions}")
    return batch


def greedy_case(goldens, model, based_on: str, batch: dict) -> None:
    """Greedy decoding by hand: a full forward per new token, no cache, attention mask of ones."""
    ids = batch["input_ids"]
    assert bool(batch["attention_mask"].all()), "greedy cases take unpadded prompts"
    new_tokens = []
    for _ in range(GREEDY_NEW_TOKENS):
        step = {**batch, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
        next_token = forward(model, step).logits[:, -1].argmax(dim=-1, keepdim=True)
        new_tokens.append(next_token)
        ids = torch.cat([ids, next_token], dim=1)
    record = {"name": based_on.replace("model_", "greedy_", 1), "kind": "greedy", "based_on": based_on,
              "max_new_tokens": GREEDY_NEW_TOKENS, "fields": {}}
    source = next(c for c in goldens.cases if c["name"] == based_on)
    record.update({k: source[k] for k in ("texts", "images", "num_crops")})
    goldens.add(record, "new_tokens", torch.cat(new_tokens, dim=1))
    goldens.cases.append(record)
    print(f"{record['name']}: {torch.cat(new_tokens, dim=1).tolist()}")


# --- main -------------------------------------------------------------------------------------


def environment(transformers_version: str) -> dict:
    import PIL
    import safetensors
    import tokenizers
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "transformers": transformers_version,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "public_code": PUBLIC_CODE_ORIGIN,
        "source_patches": [{"file": f, "old": o, "new": n, "why": w} for f, o, n, w in SOURCE_PATCHES],
        "module_patches": [
            "modeling_phi3_v.CLIP_VIT_LARGE_PATCH14_336_CONFIG replaced, before the model is built, by "
            "CLIPVisionConfig(CLIP ViT-L/14-336 values updated by config.json's vision_config, "
            "attn_implementation='eager')"
        ],
        "seed": SEED,
        "weights": f"every parameter N(0, {WEIGHT_STD}); LayerNorm/RMSNorm weights 1 + N(0, {NORM_STD})",
        "model": "public Phi3VForCausalLM, float32, attn_implementation eager (CLIP tower too), eval, use_cache=False",
        "labels": "input_ids where input_ids >= 0 and attention_mask == 1, else -100",
        "generated_by": "scripts/make_phi3v_goldens.py",
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--public-code", type=Path, required=True,
                        help="folder with the public configuration_phi3_v.py, modeling_phi3_v.py, processing_phi3_v.py")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="golden folder (default: %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="tiny model folder: config.json and tokenizer files in, model.safetensors out "
                        "(default: %(default)s)")
    parser.add_argument("--make-images", type=Path, metavar="SCIKIT_IMAGE_WHEEL",
                        help="first (re)write <out>/images from this scikit-image wheel")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    transformers_version = check_transformers()
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(1)  # single-threaded reductions: byte-identical goldens run to run
    out, model_dir = args.out.resolve(), args.model_dir.resolve()
    images_dir = out / "images"
    if args.make_images:
        make_images(args.make_images, images_dir)
    config = json.loads((model_dir / "config.json").read_text())

    with tempfile.TemporaryDirectory() as tmp:
        configuration, modeling, processing = import_public_code(args.public_code, Path(tmp))
        torch.manual_seed(SEED)
        model = build_model(configuration, modeling, config)
        randomize(model)
        weights = official_state_dict(model)
        save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
        # The goldens come from a fresh model loaded from the written file: proves it complete.
        model = build_model(configuration, modeling, config)
        load_official(model, load_file(model_dir / "model.safetensors"))
        print(f"wrote {model_dir / 'model.safetensors'}: {len(weights)} tensors")

        processors = Processors(processing, model_dir)
        goldens = Goldens()
        for name, text, keys, num_crops in PROCESSOR_CASES:
            processor_case(goldens, processors, images_dir, name, text, keys, num_crops)
        batches = {}
        for name, rows, num_crops, length_range in MODEL_CASES:
            batches[name] = model_case(goldens, model, processors, images_dir, name, rows, num_crops, length_range)
        for name in GREEDY_CASES:
            greedy_case(goldens, model, name, batches[name])

    out.mkdir(parents=True, exist_ok=True)
    save_file(goldens.tensors, out / "goldens.safetensors", metadata={"format": "pt"})
    cases = {"environment": environment(transformers_version), "fields": FIELD_DOCS, "cases": goldens.cases}
    (out / "cases.json").write_text(json.dumps(cases, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out / 'goldens.safetensors'} ({len(goldens.tensors)} tensors) and {out / 'cases.json'}")


if __name__ == "__main__":
    main()
