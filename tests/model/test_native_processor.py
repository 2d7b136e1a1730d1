"""The native processor lays out prompts and images like the public processing_phi3_v.py, and batches them."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from phi3v_data.hd_crop import image_token_count

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _normalized(value: float, channel: int) -> float:
    return (value - CLIP_MEAN[channel]) / CLIP_STD[channel]


@pytest.mark.parametrize(
    ("width", "height", "num_crops", "tokens"),
    [(320, 240, 1, 313), (320, 240, 4, 757), (320, 240, 16, 1921), (500, 500, 16, 2509)],
)
def test_image_token_runs_follow_the_hd_formula(load_processor, width, height, num_crops, tokens):
    processor = load_processor(num_crops)
    inputs = processor("<|image_1|>", images=[Image.new("RGB", (width, height), "gray")])

    # two empty text chunks around the tag: each is just <s>
    assert inputs["input_ids"][0].tolist() == [1] + [-1] * tokens + [1]
    assert inputs["attention_mask"].tolist() == [[1] * (tokens + 2)]
    assert inputs["pixel_values"].shape == (1, num_crops + 1, 3, 336, 336)
    assert processor.calc_num_image_tokens_from_image_size(width, height) == tokens


@pytest.mark.parametrize("num_crops", [1, 2, 4, 9, 16])
def test_token_counts_agree_with_the_validators_count(load_processor, num_crops):
    processor = load_processor(num_crops)
    sizes = [(320, 240), (240, 320), (500, 500), (1920, 1080), (1080, 1920), (1000, 100), (100, 1000), (33, 17)]
    images = [Image.new("RGB", size) for size in sizes]

    from_images = processor.calc_num_image_tokens(images)
    from_sizes = [processor.calc_num_image_tokens_from_image_size(width, height) for width, height in sizes]

    assert from_images == from_sizes == [image_token_count(width, height, num_crops) for width, height in sizes]


def test_image_sizes_are_the_padded_hd_height_and_width(load_processor):
    images = [Image.new("RGB", (320, 240)), Image.new("RGB", (240, 320))]

    inputs = load_processor(16)("<|image_1|><|image_2|>", images=images)

    assert inputs["image_sizes"].tolist() == [[1008, 1344], [1344, 1008]]


def test_unused_crops_are_zero(load_processor):
    # 320x240 at 16 crops is a 4x3 grid: global view + 12 crops, then 4 zero crops
    pixel_values = load_processor(16)("<|image_1|>", images=[Image.new("RGB", (320, 240), "red")])["pixel_values"][0]

    assert all(pixel_values[crop].abs().sum() > 0 for crop in range(13))
    assert pixel_values[13:].abs().sum() == 0


@pytest.mark.parametrize("transposed", [False, True])
def test_hd_transform_pads_with_white_centred_and_normalises_like_clip(load_processor, transposed):
    # a 2:1 red image at 1 crop is resized to 336x168 and padded by 84 white rows above and below
    size = (168, 336) if transposed else (336, 168)
    pixel_values = load_processor(1)("<|image_1|>", images=[Image.new("RGB", size, (255, 0, 0))])["pixel_values"]
    crop = pixel_values[0, 1]  # [0] is the global view
    if transposed:
        crop = crop.transpose(1, 2)

    white = torch.tensor([_normalized(1, channel) for channel in range(3)])
    red = torch.tensor([_normalized(value, channel) for channel, value in enumerate((1, 0, 0))])
    for rows, colour in [(slice(0, 84), white), (slice(84, 252), red), (slice(252, 336), white)]:
        expected = colour[:, None, None].expand(3, rows.stop - rows.start, 336)
        torch.testing.assert_close(crop[:, rows, :], expected, atol=1e-5, rtol=0)


def test_each_text_chunk_starts_with_bos_and_images_go_between(load_processor):
    processor = load_processor(1)
    images = [Image.new("RGB", (320, 240)), Image.new("RGB", (240, 320))]

    input_ids = processor("Look: <|image_1|><|image_2|> and compare.", images=images)["input_ids"][0].tolist()

    tokenize = processor.tokenizer
    expected = (
        tokenize("Look: ").input_ids
        + [-1] * 313
        + [1]  # the empty chunk between the two tags
        + [-2] * 313
        + tokenize(" and compare.").input_ids
    )
    assert input_ids == expected and expected[0] == 1


@pytest.mark.parametrize(
    ("prompt", "image_count", "message"),
    [
        ("<|image_2|>", 1, r"tags \[2\] must number its 1 image"),
        ("<|image_1|> <|image_3|>", 2, r"tags \[1, 3\] must number its 2 image"),
        ("<|image_1|><|image_2|>", 1, "tag 2 image"),
        ("<|image_1|>", 2, "tag 1 image"),
    ],
)
def test_image_tags_must_number_the_images_from_one(load_processor, prompt, image_count, message):
    with pytest.raises(ValueError, match=message):
        load_processor(1)(prompt, images=[Image.new("RGB", (32, 32))] * image_count)


def test_text_without_images_is_a_plain_tokenizer_call(load_processor):
    processor = load_processor(4)
    texts = ["<|user|>\nHello<|end|>\n", "a b c"]

    inputs = processor(texts, padding=True)
    expected = processor.tokenizer(texts, padding=True, return_tensors="pt")

    assert set(inputs) == {"input_ids", "attention_mask"}
    assert torch.equal(inputs["input_ids"], expected["input_ids"])
    assert inputs["input_ids"][1, -1].item() == 32000  # padded on the right with <|endoftext|>


def test_chat_template_and_decoding_are_the_real_tokenizers(load_processor):
    processor = load_processor(4)
    messages = [{"role": "user", "content": "<|image_1|>\nWhat is it?"}, {"role": "assistant", "content": "A cat."}]

    prompt = processor.tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    answer_ids = processor.tokenizer("BabyCrawling<|end|>\n<|endoftext|>", add_special_tokens=False).input_ids

    assert prompt == "<|user|>\n<|image_1|>\nWhat is it?<|end|>\n<|assistant|>\n"
    assert processor.tokenizer.apply_chat_template(messages, tokenize=False).endswith("<|assistant|>\nA cat.<|end|>\n")
    assert answer_ids == [26835, 29907, 1610, 1847, 32007, 29871, 13, 32000]
    assert processor.batch_decode([[1, *answer_ids]]) == ["<s> BabyCrawling<|end|> \n<|endoftext|>"]


def test_a_batch_of_prompts_numbers_each_prompts_images_and_pads_on_the_tokenizers_side(load_processor):
    processor = load_processor(1)
    texts = ["<|image_1|> one", "two <|image_1|><|image_2|> three images <|image_3|>"]
    images = [Image.new("RGB", (320, 240), colour) for colour in ("red", "green", "blue", "white")]
    alone = [processor(texts[0], images=images[:1]), processor(texts[1], images=images[1:])]

    flat = processor(texts, images=images)
    per_prompt = processor(texts, images=[images[:1], images[1:]])

    longest = alone[1]["input_ids"].shape[1]
    for batch in (flat, per_prompt):
        assert batch["input_ids"].shape == (2, longest)
        assert batch["input_ids"][0, : alone[0]["input_ids"].shape[1]].tolist() == alone[0]["input_ids"][0].tolist()
        assert batch["input_ids"][0, alone[0]["input_ids"].shape[1] :].eq(32000).all()
        assert batch["attention_mask"].sum(1).tolist() == [alone[0]["input_ids"].shape[1], longest]
        torch.testing.assert_close(batch["pixel_values"], torch.cat([a["pixel_values"] for a in alone]))
        assert batch["image_sizes"].tolist() == [[336, 336]] * 4
    processor.tokenizer.padding_side = "left"
    try:
        left = processor(texts, images=images)
    finally:
        processor.tokenizer.padding_side = "right"
    assert left["input_ids"][0, -alone[0]["input_ids"].shape[1] :].tolist() == alone[0]["input_ids"][0].tolist()
    assert left["attention_mask"][0, 0].item() == 0


def test_transparency_is_composited_onto_white_as_the_public_processor_does(load_processor):
    clear = Image.new("RGBA", (336, 336), (255, 0, 0, 0))

    pixels = load_processor(1)("<|image_1|>", images=[clear])["pixel_values"][0, 1]

    white = torch.tensor([_normalized(1, channel) for channel in range(3)])
    torch.testing.assert_close(pixels, white[:, None, None].expand(3, 336, 336), atol=1e-5, rtol=0)


def test_saved_files_are_the_public_processors_with_its_code_on_the_hub(load_processor, real_model_files_dir, tmp_path):
    import json

    from phi3v_train import Phi3VProcessor

    load_processor(4).save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    official = json.loads((real_model_files_dir / "preprocessor_config.json").read_text())
    assert saved.pop("auto_map") == {
        key: f"microsoft/Phi-3.5-vision-instruct--{value}" for key, value in official.pop("auto_map").items()
    }
    assert {key: saved[key] for key in official} == official
    processor_config = json.loads((tmp_path / "processor_config.json").read_text())
    assert processor_config == {
        "auto_map": {"AutoProcessor": "microsoft/Phi-3.5-vision-instruct--processing_phi3_v.Phi3VProcessor"},
        "processor_class": "Phi3VProcessor",
    }
    reloaded = Phi3VProcessor.from_pretrained(tmp_path)
    assert reloaded.num_crops == 4
    assert reloaded.tokenizer.chat_template == load_processor(4).tokenizer.chat_template
