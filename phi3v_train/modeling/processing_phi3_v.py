"""Phi-3(.5)-vision's processor: prompts with ``<|image_k|>`` tags and their images to model inputs.

As the public ``processing_phi3_v.py``: the prompt is split at its image tags, every text chunk is
tokenized on its own (so each starts with ``<s>``), and tag ``k`` becomes a run of ``-k`` ids as long as
image ``k``'s feature rows. The tags of one prompt must number its images 1..n. A list of prompts is a
batch: each prompt numbers its own images, the images are given in prompt order (a flat list, or a list
per prompt), and rows are padded on the tokenizer's padding side with its pad token.

``save_pretrained`` writes the files the public processor reads: ``preprocessor_config.json`` and
``processor_config.json`` with an ``auto_map`` naming the public code, and the tokenizer with its chat
template.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from phi3v_data.hd_crop import image_token_count
from phi3v_train.modeling.configuration_phi3_v import hub_auto_map
from phi3v_train.modeling.image_processing_phi3_v import Phi3VImageProcessor

IMAGE_TAG = re.compile(r"<\|image_(\d+)\|>")
PREPROCESSOR_CONFIG = "preprocessor_config.json"
PROCESSOR_CONFIG = "processor_config.json"
PUBLIC_PROCESSOR_AUTO_MAP = {
    "AutoImageProcessor": "processing_phi3_v.Phi3VImageProcessor",
    "AutoProcessor": "processing_phi3_v.Phi3VProcessor",
}


class Phi3VProcessor(ProcessorMixin):
    """The image processor and the tokenizer of Phi-3(.5)-vision."""

    def __init__(self, image_processor: Phi3VImageProcessor, tokenizer, chat_template: str | None = None):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, num_crops: int | None = None, **kwargs) -> Phi3VProcessor:
        """The processor in a model folder (or Hub id); ``num_crops`` overrides the saved one."""
        options = {} if num_crops is None else {"num_crops": num_crops}
        image_processor = Phi3VImageProcessor.from_pretrained(pretrained_model_name_or_path, **options, **kwargs)
        # tokenizer.json as it is (AutoTokenizer would read config.json and ask for the remote code).
        tokenizer = PreTrainedTokenizerFast.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls(image_processor, tokenizer, chat_template=tokenizer.chat_template)

    @property
    def num_crops(self) -> int:
        return self.image_processor.num_crops

    def calc_num_image_tokens(self, images) -> list[int]:
        """The ids each image takes in a prompt (the public processor's method of the same name)."""
        return self.image_processor.calc_num_image_tokens(images)

    def calc_num_image_tokens_from_image_size(self, width: int, height: int) -> int:
        return image_token_count(width, height, self.num_crops)

    def __call__(self, text, images=None, padding: bool | str = True, return_tensors: str | None = "pt", **kwargs):
        """``input_ids``, ``attention_mask`` and, with images, ``pixel_values`` and ``image_sizes``."""
        texts = [text] if isinstance(text, str) else list(text)
        images_per_text = _images_per_text(texts, images)
        flat = [image for group in images_per_text for image in group]
        processed = self.image_processor(flat, return_tensors="pt") if flat else None
        counts = list(processed["num_img_tokens"]) if processed is not None else []
        rows, start = [], 0
        for row, group in zip(texts, images_per_text):
            rows.append(self._ids(row, [int(count) for count in counts[start : start + len(group)]]))
            start += len(group)
        data = self._pad(rows, padding)
        if processed is not None:
            data["pixel_values"] = processed["pixel_values"]
            data["image_sizes"] = torch.as_tensor(processed["image_sizes"], dtype=torch.long)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _ids(self, text: str, image_token_counts: list[int]) -> list[int]:
        tags = [int(number) for number in IMAGE_TAG.findall(text)]
        if sorted(set(tags)) != list(range(1, len(image_token_counts) + 1)):
            raise ValueError(
                f"the prompt's image tags {sorted(set(tags))} must number its {len(image_token_counts)} image(s) "
                f"1..{len(image_token_counts)} (<|image_1|>, <|image_2|>, ...)"
            )
        chunks = IMAGE_TAG.split(text)[::2]
        ids = list(self.tokenizer(chunks[0]).input_ids)
        for tag, chunk in zip(tags, chunks[1:]):
            ids += [-tag] * image_token_counts[tag - 1]
            ids += self.tokenizer(chunk).input_ids
        return ids

    def _pad(self, rows: list[list[int]], padding: bool | str) -> dict[str, torch.Tensor]:
        longest = max(len(row) for row in rows)
        if len(rows) > 1 and not padding and any(len(row) != longest for row in rows):
            raise ValueError("prompts of different lengths need padding=True to form a batch")
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for index, row in enumerate(rows):
            span = slice(longest - len(row), longest) if self.tokenizer.padding_side == "left" else slice(0, len(row))
            input_ids[index, span] = torch.tensor(row, dtype=torch.long)
            attention_mask[index, span] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    def save_pretrained(self, save_directory, **kwargs):
        """The tokenizer (chat template included) and the two processor files the public code reads."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(folder)
        preprocessor = {
            **self.image_processor.to_dict(),
            "auto_map": hub_auto_map(PUBLIC_PROCESSOR_AUTO_MAP),
            "image_processor_type": "Phi3VImageProcessor",
            "processor_class": "Phi3VProcessor",
        }
        processor = {"auto_map": hub_auto_map({"AutoProcessor": PUBLIC_PROCESSOR_AUTO_MAP["AutoProcessor"]}),
                     "processor_class": "Phi3VProcessor"}
        for name, content in ((PREPROCESSOR_CONFIG, preprocessor), (PROCESSOR_CONFIG, processor)):
            (folder / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return [str(folder / PREPROCESSOR_CONFIG), str(folder / PROCESSOR_CONFIG)]


def _images_per_text(texts: list[str], images) -> list[list]:
    """The images of each prompt: given per prompt, or a flat list shared out by each prompt's tag count."""
    if images is None:
        return [[] for _ in texts]
    if not isinstance(images, (list, tuple)):
        images = [images]
    if images and all(isinstance(group, (list, tuple)) for group in images):
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} lists of images for {len(texts)} prompts")
        return [list(group) for group in images]
    groups, start = [], 0
    for text in texts:
        count = len(set(IMAGE_TAG.findall(text)))
        groups.append(list(images[start : start + count]))
        start += count
    if start != len(images):
        raise ValueError(f"the prompts tag {start} image(s) but {len(images)} were given")
    return groups
