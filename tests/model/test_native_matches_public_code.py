"""The native classes give the public remote code's outputs, recorded in ``fixtures/golden/phi3v``.

``scripts/make_phi3v_goldens.py`` ran the public ``processing_phi3_v.py`` and ``modeling_phi3_v.py``
(transformers 5.23, float32, eager) on the tiny model's weights and these prompts and images; here the
native processor and model get the same inputs. Token ids must be equal, pixels and logits equal up to
float rounding, greedy continuations (native: ``generate`` with the KV cache) the same tokens.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = REPO_ROOT / "fixtures" / "golden" / "phi3v"
CASES = json.loads((GOLDEN_DIR / "cases.json").read_text(encoding="utf-8"))["cases"]
PAD_ID = 32000


@cache
def goldens() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN_DIR / "goldens.safetensors")


def golden(case: dict, field: str) -> torch.Tensor:
    return goldens()[case["fields"][field]]


def cases_of(kind: str) -> list:
    return [pytest.param(case, id=case["name"]) for case in CASES if case["kind"] == kind]


def native_inputs(load_processor, case: dict):
    """The native processor's batch for the case's prompts and images (one prompt: no padding)."""
    processor = load_processor(case["num_crops"] or 4)
    images = [[Image.open(REPO_ROOT / path) for path in row] for row in case["images"]]
    texts = case["texts"]
    if len(texts) == 1:
        return processor(texts[0], images=images[0] or None)
    return processor(texts, images=images)


@pytest.mark.parametrize("case", cases_of("processor"))
def test_the_processor_gives_the_public_ids_and_pixels(load_processor, case):
    inputs = native_inputs(load_processor, case)
    processor = load_processor(case["num_crops"])

    assert torch.equal(inputs["input_ids"], golden(case, "input_ids"))
    assert torch.equal(inputs["attention_mask"], golden(case, "attention_mask"))
    assert inputs["image_sizes"].tolist() == golden(case, "image_sizes").tolist()
    images = [Image.open(REPO_ROOT / path) for path in case["images"][0]]
    assert processor.calc_num_image_tokens(images) == golden(case, "num_img_tokens").tolist()
    pixels = inputs["pixel_values"]
    if "pixel_values" in case["fields"]:
        torch.testing.assert_close(pixels, golden(case, "pixel_values"), atol=1e-5, rtol=0)
    else:
        sums = pixels.double().sum(dim=(-2, -1))
        torch.testing.assert_close(sums, golden(case, "pixel_sums"), atol=1e-2, rtol=1e-6)
        sampled = pixels.reshape(-1)[golden(case, "pixel_sample_index")]
        torch.testing.assert_close(sampled, golden(case, "pixel_sample_values"), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
@pytest.mark.parametrize("case", cases_of("model"))
def test_the_model_gives_the_public_logits_and_loss(load_model, load_processor, case, kernel):
    inputs = native_inputs(load_processor, case)
    assert torch.equal(inputs["input_ids"], golden(case, "input_ids"))
    model = load_model(attn_implementation=kernel)
    labels = inputs["input_ids"].masked_fill((inputs["input_ids"] < 0) | (inputs["attention_mask"] == 0), -100)

    with torch.no_grad():
        outputs = model(**inputs, labels=labels)

    logits = outputs.logits.float()
    real = inputs["attention_mask"].bool()
    assert torch.equal(logits.argmax(-1)[real], golden(case, "argmax")[real])
    torch.testing.assert_close(logits.logsumexp(-1)[real], golden(case, "logsumexp")[real], atol=2e-4, rtol=1e-5)
    rows = golden(case, "logits_rows")
    for row, positions in enumerate(case["logit_positions"]):
        for index, position in enumerate(positions):
            expected = rows[row, index] if rows.dim() == 3 else rows[row * len(positions) + index]
            torch.testing.assert_close(logits[row, position], expected, atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(outputs.loss, golden(case, "loss"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", cases_of("greedy"))
def test_cached_generation_continues_as_the_public_model(load_model, load_processor, case):
    inputs = native_inputs(load_processor, case)
    steps = case["max_new_tokens"]

    generated = load_model().generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False)

    assert generated[0, inputs["input_ids"].shape[1] :].tolist() == golden(case, "new_tokens").reshape(-1).tolist()
