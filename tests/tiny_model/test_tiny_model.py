"""The tiny model's forward, loss, padding, checkpointing and generation behave like the real model's."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

PROMPT = "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\nA square.<|end|>\n<|endoftext|>"


def _image(colour, size=(320, 240)):
    return Image.new("RGB", size, colour)


def _labels(input_ids):
    """Labels that skip the image positions (negative ids)."""
    labels = input_ids.clone()
    labels[labels < 0] = -100
    return labels


def _forward(model, inputs, **kwargs):
    """Forward pass on a copy of ``input_ids``: the model clamps them in place."""
    return model(**{**inputs, "input_ids": inputs["input_ids"].clone()}, use_cache=False, **kwargs)


def test_forward_and_backward_with_an_image_reach_every_part(model, load_processor):
    inputs = load_processor(4)(PROMPT, images=[_image("teal")])
    model.train()

    outputs = _forward(model, inputs, labels=_labels(inputs["input_ids"]))
    outputs.loss.backward()

    embedding = model.model.vision_embed_tokens
    assert outputs.logits.shape == (1, inputs["input_ids"].shape[1], 32064)
    assert outputs.logits.dtype == torch.float32
    assert math.isfinite(outputs.loss.item())
    assert abs(outputs.loss.item() - math.log(32064)) < 0.5  # random weights: close to uniform
    for parameter in (
        embedding.img_processor.encoder.layers[0].self_attn.q_proj.weight,
        embedding.img_projection[0].weight,
        embedding.glb_GN,
        embedding.sub_GN,
        model.model.embed_tokens.weight,
        model.model.layers[0].self_attn.qkv_proj.weight,
        model.lm_head.weight,
    ):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_text_only_forward_and_backward(model, load_processor):
    inputs = load_processor(4)("<|user|>\nHello<|end|>\n<|assistant|>\nHi<|end|>")

    outputs = model(**inputs, labels=inputs["input_ids"], use_cache=False)
    outputs.loss.backward()

    assert math.isfinite(outputs.loss.item())
    assert model.model.embed_tokens.weight.grad.abs().sum() > 0
    assert model.model.vision_embed_tokens.img_projection[0].weight.grad is None


def test_default_bfloat16_model_trains(load_model, load_processor):
    model = load_model(dtype="auto").train()
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])

    outputs = _forward(model, inputs, labels=_labels(inputs["input_ids"]))
    outputs.loss.backward()

    assert model.dtype == torch.bfloat16
    assert math.isfinite(outputs.loss.item())


def test_loss_is_the_mean_shifted_cross_entropy_of_the_logits(model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    labels = _labels(inputs["input_ids"])
    labels[0, :-6] = -100  # only the answer counts

    outputs = _forward(model, inputs, labels=labels)
    expected = torch.nn.functional.cross_entropy(outputs.logits[0, :-1], labels[0, 1:], ignore_index=-100)

    torch.testing.assert_close(outputs.loss, expected)


def test_hd_features_fill_the_image_positions_in_sub_glb_order(model, load_processor):
    # 672x336 at 4 crops: a 2-wide, 1-high grid -> 12 rows of 24+1 sub tokens, glb_GN, 12 rows of 12+1
    inputs = load_processor(4)("<|image_1|>", images=[_image("orange", (672, 336))])
    embedding = model.model.vision_embed_tokens

    with torch.no_grad():
        embeds = embedding(inputs["input_ids"].clone(), inputs["pixel_values"], inputs["image_sizes"])[0]
        sub_separator = embedding.img_projection(embedding.sub_GN.reshape(1, -1))[0]
        global_separator = embedding.img_projection(embedding.glb_GN.reshape(1, -1))[0]
        # CLIP patches of each crop on a 24x24 grid; crop 0 is the global view, 1 and 2 the left and right halves
        patches = embedding.get_img_features(inputs["pixel_values"][0]).reshape(-1, 24, 24, 32)

        def merged(crop, row, column):  # one token: the projected 2x2 block of patches
            block = patches[crop, 2 * row : 2 * row + 2, 2 * column : 2 * column + 2].reshape(-1)
            return embedding.img_projection(block)

    image_embeds = embeds[1:-1]  # between the two <s> of the empty text chunks

    def positions_of(vector):
        return [i for i, row in enumerate(image_embeds) if torch.allclose(row, vector, atol=1e-6)]

    assert len(image_embeds) == 144 * 2 + 12 * 1 + 157
    assert positions_of(global_separator) == [300]
    sub_row_ends = [25 * row + 24 for row in range(12)]
    global_row_ends = [301 + 13 * row + 12 for row in range(12)]
    assert positions_of(sub_separator) == sub_row_ends + global_row_ends
    # position -> (crop, row, column) of the merged patch block it holds
    layout = {0: (1, 0, 0), 12: (2, 0, 0), 25 + 13: (2, 1, 1), 301 + 13 * 11 + 11: (0, 11, 11)}
    for position, (crop, row, column) in layout.items():
        torch.testing.assert_close(image_embeds[position], merged(crop, row, column))
    torch.testing.assert_close(embeds[0], model.model.embed_tokens.weight[1])


def test_the_image_changes_the_prediction(model, load_processor):
    processor = load_processor(1)

    logits = [_forward(model, processor(PROMPT, images=[_image(colour)])).logits for colour in ("black", "white")]

    assert not torch.allclose(logits[0][0, -1], logits[1][0, -1])


def test_forward_clamps_input_ids_in_place_like_the_real_model(model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    input_ids = inputs["input_ids"]
    image_positions = input_ids < 0

    with pytest.warns(UserWarning, match="modifies `input_ids` in-place"):
        model(**inputs, use_cache=False)

    assert (input_ids >= 0).all()
    assert (input_ids[image_positions] == 0).all()


def test_right_padded_batch_of_two_matches_each_sample_alone(model, load_processor):
    processor = load_processor(1)
    short_prompt = "<|user|>\n<|image_1|>\nColour?<|end|>\n<|assistant|>\nRed.<|end|>"
    samples = [processor(PROMPT, images=[_image("teal")]), processor(short_prompt, images=[_image("red", (200, 90))])]
    alone = [_forward(model, sample).logits[0] for sample in samples]
    length = max(sample["input_ids"].shape[1] for sample in samples)

    def right_pad(tensor, value):
        return torch.nn.functional.pad(tensor, (0, length - tensor.shape[1]), value=value)

    batch = {
        "input_ids": torch.cat([right_pad(s["input_ids"], 32000) for s in samples]),
        "attention_mask": torch.cat([right_pad(s["attention_mask"], 0) for s in samples]),
        "pixel_values": torch.cat([s["pixel_values"] for s in samples]),
        "image_sizes": torch.cat([s["image_sizes"] for s in samples]),
    }
    labels = torch.cat([right_pad(_labels(s["input_ids"]), -100) for s in samples])

    outputs = _forward(model, batch, labels=labels)

    assert math.isfinite(outputs.loss.item())
    for index, sample_logits in enumerate(alone):
        torch.testing.assert_close(outputs.logits[index, : len(sample_logits)], sample_logits, atol=1e-4, rtol=1e-4)


def test_eager_and_sdpa_attention_agree(load_model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    eager, sdpa = load_model(attn_implementation="eager"), load_model(attn_implementation="sdpa")

    assert type(eager.model.layers[0].self_attn).__name__ == "Phi3Attention"
    assert type(sdpa.model.layers[0].self_attn).__name__ == "Phi3SdpaAttention"
    torch.testing.assert_close(_forward(eager, inputs).logits, _forward(sdpa, inputs).logits, atol=1e-4, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients(load_model, load_processor):
    inputs = load_processor(1)(PROMPT, images=[_image("teal")])
    labels = _labels(inputs["input_ids"])
    plain, checkpointed = load_model().train(), load_model().train()

    checkpointed.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    plain(**{**inputs, "input_ids": inputs["input_ids"].clone()}, labels=labels, use_cache=False).loss.backward()
    # no use_cache=False: in training with checkpointing the model turns the cache off itself
    checkpointed(**{**inputs, "input_ids": inputs["input_ids"].clone()}, labels=labels).loss.backward()

    clip_layers = checkpointed.model.vision_embed_tokens.img_processor.encoder.layers
    assert checkpointed.model.gradient_checkpointing and all(layer.gradient_checkpointing for layer in clip_layers)
    for name, parameter in plain.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(checkpointed.get_parameter(name).grad, parameter.grad, msg=name)


def test_use_cache_fails_like_the_real_model_on_transformers_5(model, load_processor):
    inputs = load_processor(1)("<|image_1|>Hi", images=[_image("teal")])

    with pytest.raises(AttributeError, match="from_legacy_cache"):
        model(**{**inputs, "input_ids": inputs["input_ids"].clone()})  # config.use_cache is True
    with pytest.raises(AttributeError, match="seen_tokens"):
        model.generate(**inputs, max_new_tokens=2)


def test_generate_without_cache_reruns_the_whole_sequence_with_the_images(model, load_processor):
    inputs = load_processor(1)("<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\n", images=[_image("teal")])
    prompt_length = inputs["input_ids"].shape[1]
    steps = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: steps.append(
            (kwargs["input_ids"].shape[1], kwargs["pixel_values"] is not None, kwargs["use_cache"])
        ),
        with_kwargs=True,
    )

    generated = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False, use_cache=False)

    assert generated.shape == (1, prompt_length + 3)
    assert steps == [(prompt_length + step, True, False) for step in range(3)]
