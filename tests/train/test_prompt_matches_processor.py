"""The issue's definition of a record's length, computed with the model's own processor and tokenizer.

For a single-turn record the validator and the trainer count
``len(processor(chat_template([{"role": "user", "content": content}], add_generation_prompt=True), images).input_ids)
+ len(tokenizer(assistant + "<|end|>\\n<|endoftext|>", add_special_tokens=False).input_ids)``.
Here the processor is the native one, whose ids equal the public ``processing_phi3_v.py``'s
(``tests/model/test_native_matches_public_code.py``); the ids, not only their number, must be the
prompt builder's.
"""

import functools

import pytest
from PIL import Image
from train_fixtures import TINY_MODEL

from phi3v_data.format import Record
from phi3v_data.hd_crop import image_token_count
from phi3v_data.placeholders import user_contents
from phi3v_train.model import load_processor

SIZES = [(320, 240), (240, 320), (1700, 2200), (77, 500)]
TURNS = [
    {"images": [], "user": "Text only: what is 2 + 2?", "assistant": "4"},
    {"images": ["a.jpg"], "user": "What is shown?", "assistant": "A cat."},
    {"images": ["a.jpg", "b.jpg", "c.jpg"], "user": "Frames.\nWhich class?", "assistant": "BabyCrawling"},
    {"images": ["a.jpg", "b.jpg"], "user": "Left <|image_1|> and right <|image_2|>: same?", "assistant": "True"},
    {"images": ["a.jpg", "b.jpg"], "user": "<|image_1|><|image_2|>Adjacent tags, then ünïcödé 🎉", "assistant": "Ja."},
]


processor_with = functools.cache(lambda num_crops: load_processor(TINY_MODEL, num_crops=num_crops))


@pytest.mark.parametrize("num_crops", [1, 4, 16])
@pytest.mark.parametrize("turn", TURNS, ids=["text", "one-image", "frames", "tags", "adjacent-tags"])
def test_the_builder_gives_the_processors_ids_then_the_answers(builder, turn, num_crops) -> None:
    record = Record.model_validate({"id": "r", "source": "test", "conversations": [turn]})
    images = [Image.new("RGB", SIZES[index % len(SIZES)]) for index in range(len(turn["images"]))]
    processor = processor_with(num_crops)
    (content,) = user_contents(record)
    prompt = processor.tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = processor(prompt, images or None, return_tensors="pt")["input_ids"][0].tolist()
    answer_ids = processor.tokenizer(turn["assistant"] + "<|end|>\n<|endoftext|>", add_special_tokens=False).input_ids
    counts = [image_token_count(image.width, image.height, num_crops) for image in images]
    assert builder.encode(record, counts).input_ids == prompt_ids + answer_ids
