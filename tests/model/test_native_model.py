"""The native model's forward, loss, padding, attention kernels, checkpointing and cached generation."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

PROMPT = "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\nA square.<|end|>\n<|endoftext|>"
QUESTION = "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\n"


def _image(colour, size=(320, 240)):
    return Image.new("RGB", size, colour)


def _labels(input_ids):
    """Labels that skip the image positions (negative ids)."""
    labels = input_ids.clone()
    labels[labels < 0] = -100
    return labels


def test_forward_and_backward_with_an_image_reach_every_part(model, load_processor):
    inputs = load_processor(4)(PROMPT, images=[_image("teal")])
    model.train()

    outputs = model(**inputs, labels=_labels(inputs["input_ids"]))
    outputs.loss.backward()

    embedding = model.model.vision_embed_tokens
    assert outputs.logits.shape == (1, inputs["input_ids"].shape[1], 32064)
    assert math.isfinite(outputs.loss.item())
    for parameter in (
        embedding.img_processor.vision_model.embeddings.patch_embedding.weight,
        embedding.img_processor.vision_model.encoder.layers[0].self_attn.q_proj.weight,
        embedding.img_projection[0].weight,
        embedding.glb_GN,
        embedding.sub_GN,
        model.model.embed_tokens.weight,
        model.model.layers[0].self_attn.qkv_proj.weight,
        model.lm_head.weight,
    ):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_the_callers_input_ids_are_left_as_they_are(model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    before = inputs["input_ids"].clone()

    first = model(**inputs).logits
    second = model(**inputs).logits

    assert torch.equal(inputs["input_ids"], before)
    torch.testing.assert_close(first, second)


def test_text_only_training_gives_the_vision_weights_zero_gradients(model, load_processor):
    # DDP and ZeRO-3 need every rank to use the same parameters, whatever its batch holds.
    inputs = load_processor(4)("<|user|>\nHello<|end|>\n<|assistant|>\nHi<|end|>")
    model.train()

    outputs = model(**inputs, labels=inputs["input_ids"])
    outputs.loss.backward()

    assert math.isfinite(outputs.loss.item())
    assert model.model.embed_tokens.weight.grad.abs().sum() > 0
    projection = model.model.vision_embed_tokens.img_projection[0].weight.grad
    assert projection is not None and projection.abs().sum() == 0


def test_text_only_inference_skips_the_vision_tower(model, load_processor):
    calls = []
    model.model.vision_embed_tokens.register_forward_hook(lambda *args: calls.append(1))

    model(**load_processor(4)("<|user|>\nHello<|end|>\n<|assistant|>\n"))

    assert calls == []


def test_image_ids_without_pixels_are_refused(model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])

    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=inputs["input_ids"])


def test_ids_and_pixels_of_different_num_crops_are_refused(model, load_processor):
    ids = load_processor(1)(PROMPT, images=[_image("teal")])["input_ids"]
    pixels = load_processor(4)(PROMPT, images=[_image("teal")])

    with pytest.raises(ValueError, match="same processor call"):
        model(input_ids=ids, pixel_values=pixels["pixel_values"], image_sizes=pixels["image_sizes"])


def test_the_default_bfloat16_model_trains(load_model, load_processor):
    model = load_model(dtype=torch.bfloat16).train()
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])

    outputs = model(**inputs, labels=_labels(inputs["input_ids"]))
    outputs.loss.backward()

    assert model.dtype == torch.bfloat16
    assert math.isfinite(outputs.loss.item())


def test_loss_is_the_mean_shifted_cross_entropy_of_the_logits(model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    labels = _labels(inputs["input_ids"])
    labels[0, :-6] = -100  # only the answer counts

    outputs = model(**inputs, labels=labels)
    expected = torch.nn.functional.cross_entropy(outputs.logits[0, :-1].float(), labels[0, 1:], ignore_index=-100)

    torch.testing.assert_close(outputs.loss, expected)


def test_hd_features_fill_the_image_positions_in_sub_glb_order(model, load_processor):
    # 672x336 at 4 crops: a 2-wide, 1-high grid -> 12 rows of 24+1 sub tokens, glb_GN, 12 rows of 12+1
    inputs = load_processor(4)("<|image_1|>", images=[_image("orange", (672, 336))])
    embedding = model.model.vision_embed_tokens

    with torch.no_grad():
        embeds = model.model.embed_images(inputs["input_ids"], inputs["pixel_values"], inputs["image_sizes"])[0]
        sub_separator = embedding.img_projection(embedding.sub_GN.reshape(1, -1))[0]
        global_separator = embedding.img_projection(embedding.glb_GN.reshape(1, -1))[0]
        # CLIP patches of each crop on a 24x24 grid; crop 0 is the global view, 1 and 2 the left and right halves
        clip = embedding.img_processor.vision_model
        hidden = clip.pre_layrnorm(clip.embeddings(inputs["pixel_values"][0, :3]))
        hidden = clip.encoder.layers[0](hidden, None)  # layer_idx -2 of 2 layers: the first layer's output
        patches = hidden[:, 1:].reshape(-1, 24, 24, 32)

        def merged(crop, row, column):  # one token: the projected 2x2 block of patches
            block = patches[crop, 2 * row : 2 * row + 2, 2 * column : 2 * column + 2].reshape(-1)
            return embedding.img_projection(block)

    image_embeds = embeds[1:-1]  # between the two <s> of the empty text chunks

    def positions_of(vector):
        return [i for i, row in enumerate(image_embeds) if torch.allclose(row, vector, atol=1e-5)]

    assert len(image_embeds) == 144 * 2 + 12 * 1 + 157
    assert positions_of(global_separator) == [300]
    sub_row_ends = [25 * row + 24 for row in range(12)]
    global_row_ends = [301 + 13 * row + 12 for row in range(12)]
    assert positions_of(sub_separator) == sub_row_ends + global_row_ends
    # position -> (crop, row, column) of the merged patch block it holds
    layout = {0: (1, 0, 0), 12: (2, 0, 0), 25 + 13: (2, 1, 1), 301 + 13 * 11 + 11: (0, 11, 11)}
    for position, (crop, row, column) in layout.items():
        torch.testing.assert_close(image_embeds[position], merged(crop, row, column), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embeds[0], model.model.embed_tokens.weight[1])


def test_padding_crops_never_reach_clip(model, load_processor):
    # 320x240 at 16 crops uses a 4x3 grid: 13 of the 17 crop slots; the 4 zero slots are skipped.
    inputs = load_processor(16)(QUESTION, images=[_image("teal")])
    batches = []
    model.model.vision_embed_tokens.img_processor.register_forward_hook(
        lambda module, args, output: batches.append(args[0].shape[0])
    )

    model(**inputs)

    assert inputs["pixel_values"].shape[1] == 17
    assert batches == [13]


def test_a_right_padded_batch_of_two_matches_each_sample_alone(model, load_processor):
    processor = load_processor(1)
    short_prompt = "<|user|>\n<|image_1|>\nColour?<|end|>\n<|assistant|>\nRed.<|end|>"
    texts, images = [PROMPT, short_prompt], [_image("teal"), _image("red", (200, 90))]
    alone = [model(**processor(text, images=[image])).logits[0] for text, image in zip(texts, images)]

    batch = processor(texts, images=images)
    labels = _labels(batch["input_ids"]).masked_fill(batch["attention_mask"] == 0, -100)
    outputs = model(**batch, labels=labels)

    assert math.isfinite(outputs.loss.item())
    for index, sample_logits in enumerate(alone):
        torch.testing.assert_close(outputs.logits[index, : len(sample_logits)], sample_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_attention_kernels_agree_for_the_language_model_and_clip(load_model, load_processor, kernel):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    reference, model = load_model(attn_implementation="eager"), load_model(attn_implementation=kernel)

    assert model.config._attn_implementation == kernel
    assert model.config.vision_config._attn_implementation == kernel
    torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, atol=1e-4, rtol=1e-4)


def test_the_default_kernel_is_sdpa_without_flash_attention(load_model):
    model = load_model()

    assert model.config._attn_implementation == "sdpa"
    assert model.config.vision_config._attn_implementation == "sdpa"


def test_gradient_checkpointing_gives_the_same_gradients(load_model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    labels = _labels(inputs["input_ids"])
    plain, checkpointed = load_model().train(), load_model().train()

    checkpointed.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    plain(**inputs, labels=labels, use_cache=False).loss.backward()
    checkpointed(**inputs, labels=labels, use_cache=False).loss.backward()

    clip_layers = checkpointed.model.vision_embed_tokens.img_processor.vision_model.encoder.layers
    assert all(layer.gradient_checkpointing for layer in clip_layers)
    assert all(layer.gradient_checkpointing for layer in checkpointed.model.layers)
    for name, parameter in plain.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(checkpointed.get_parameter(name).grad, parameter.grad, msg=name)


def _greedy_without_cache(model, inputs, steps):
    ids = inputs["input_ids"]
    for _ in range(steps):
        logits = model(input_ids=ids, pixel_values=inputs["pixel_values"], image_sizes=inputs["image_sizes"]).logits
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    return ids


def test_cached_generate_equals_a_full_forward_per_token(model, load_processor):
    inputs = load_processor(4)(QUESTION, images=[_image("teal")])

    generated = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)

    assert torch.equal(generated, _greedy_without_cache(model, inputs, 6))


def test_the_images_go_in_with_the_prompt_only(model, load_processor):
    inputs = load_processor(1)(QUESTION, images=[_image("teal")])
    steps = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: steps.append((kwargs["input_ids"].shape[1], kwargs.get("pixel_values") is not None)),
        with_kwargs=True,
    )

    model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)

    assert steps == [(inputs["input_ids"].shape[1], True), (1, False), (1, False)]


def test_batched_left_padded_generation_matches_each_prompt_alone(model, load_processor):
    processor = load_processor(1)
    texts = [QUESTION, "<|user|>\n<|image_1|>\nAnd this one, what colour is it?<|end|>\n<|assistant|>\n"]
    images = [_image("teal"), _image("red", (120, 200))]
    alone = [
        model.generate(**processor(text, images=[image]), max_new_tokens=5, min_new_tokens=5, do_sample=False)[0, -5:]
        for text, image in zip(texts, images)
    ]
    processor.tokenizer.padding_side = "left"
    try:
        batch = processor(texts, images=images)
    finally:
        processor.tokenizer.padding_side = "right"

    generated = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)

    for row, expected in enumerate(alone):
        assert torch.equal(generated[row, -5:], expected)


def test_sampling_is_reproducible_with_a_seed_and_follows_the_cached_logits(model, load_processor):
    inputs = load_processor(1)(QUESTION, images=[_image("teal")])

    def sample():
        torch.manual_seed(3)
        return model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=True, top_k=0, top_p=1.0)

    first, second = sample(), sample()

    assert torch.equal(first, second)
    # every sampled token had a non-zero probability under the model's full (uncached) forward
    logits = model(input_ids=first[:, :-1], pixel_values=inputs["pixel_values"], image_sizes=inputs["image_sizes"]).logits
    prompt = inputs["input_ids"].shape[1]
    probabilities = logits[0, prompt - 1 :].softmax(-1)
    assert (probabilities.gather(-1, first[0, prompt:, None]) > 0).all()


def test_generation_across_longropes_switch_point_equals_full_forwards(model, load_processor):
    # Past 4096 tokens LongRoPE uses its long factors for every position: the cached keys of the short
    # factors are dropped and the whole sequence, images included, is recomputed once.
    processor = load_processor(1)
    filler = " ".join(["the quick brown fox jumps over the lazy dog"] * 342)
    inputs = processor(f"<|user|>\n<|image_1|>\n{filler}<|end|>\n<|assistant|>\n", images=[_image("teal")])
    prompt = inputs["input_ids"].shape[1]
    assert prompt == 4086

    generated = model.generate(**inputs, max_new_tokens=14, min_new_tokens=14, do_sample=False)

    assert torch.equal(generated, _greedy_without_cache(model, inputs, 14))
