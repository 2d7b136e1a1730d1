"""The one prompt builder: a record to the exact token ids Phi-3.5-vision is trained on.

The validator's ``--lengths`` and the trainer's collator both call :class:`PromptBuilder`, so a
length the validator reports is the length the trainer feeds. It reproduces the real processor
(``processing_phi3_v.py``) without torch: each turn's user text goes through the tokenizer's chat
template; the prompt is split on ``<|image_k|>`` tags; every text chunk is tokenized on its own
with special tokens (so each starts with ``<s>``); each tag becomes a run of ``-k`` ids as long as
that image's HD-crop token count. Answers are tokenized without special tokens and followed by
``<|end|>\\n``, the last one also by ``<|endoftext|>`` (the cookbook's training target). Only
answer tokens carry labels; everything else is ``-100``. In a multi-turn record a later turn's prompt
continues the sequence without a new ``<s>``, as when the real processor reads a whole conversation:
``<s>`` starts the sequence and follows each image, nothing else.

A single-turn record with one 320x240 image at ``num_crops=4``::

    {"id": "1", "source": "demo", "conversations": [{"images": ["a.jpg"], "user": "What is this?",
                                                      "assistant": "A cat."}]}

becomes ``<|user|>\\n`` + ``<|image_1|>`` + ``\\nWhat is this?<|end|>\\n<|assistant|>\\n`` with the tag
expanded to 757 ids of -1, followed by the tokens of ``A cat.<|end|>\\n<|endoftext|>``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from phi3v_data.errors import ModelFilesError
from phi3v_data.format import Record
from phi3v_data.placeholders import IMAGE_TAG, user_contents

IGNORE_INDEX = -100
ANSWER_END = "<|end|>\n"
SEQUENCE_END = "<|endoftext|>"


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """Token ids (image positions as negative image numbers) and labels of one record."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


class PromptBuilder:
    """Turns records into token ids with a model's tokenizer and chat template."""

    def __init__(self, tokenizer: Tokenizer, chat_template: str, special_tokens: dict[str, str] | None = None):
        self.tokenizer = tokenizer
        # The environment transformers renders chat templates in, with the helper templates may call.
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.globals["raise_exception"] = _raise_template_error
        self._template = environment.from_string(chat_template)
        self._special_tokens = special_tokens or {}
        self._sequence_start = tokenizer.encode("", add_special_tokens=True).ids

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> PromptBuilder:
        """Load ``tokenizer.json`` and the chat template from a model folder (a download or a copy)."""
        folder = Path(model_dir)
        tokenizer_file = folder / "tokenizer.json"
        config_file = folder / "tokenizer_config.json"
        if not tokenizer_file.is_file() or not config_file.is_file():
            raise ModelFilesError(
                f"{folder} lacks tokenizer.json or tokenizer_config.json: point --model at a folder holding "
                "the model's tokenizer files (a downloaded Phi-3.5-vision-instruct, or fixtures/tiny-phi3v)"
            )
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
            template = config.get("chat_template") or _separate_chat_template(folder)
            special = {key: value for key, value in config.items() if key.endswith("_token") and isinstance(value, str)}
            builder = cls(Tokenizer.from_file(str(tokenizer_file)), template, special) if template else None
        except Exception as error:  # tokenizers raises a bare Exception; json, jinja2 and the file system their own
            raise ModelFilesError(
                f"the tokenizer files in {folder} cannot be loaded ({type(error).__name__}: {error}); "
                "re-download them or point --model at another folder"
            ) from None
        if builder is None:
            raise ModelFilesError(f"{folder} has no chat template (tokenizer_config.json, chat_template.jinja)")
        return builder

    def user_prompt(self, content: str) -> str:
        """The chat template applied to one user message, with the assistant's generation prompt."""
        messages = [{"role": "user", "content": content}]
        return self._template.render(messages=messages, add_generation_prompt=True, **self._special_tokens)

    def prompts(self, record: Record) -> list[str]:
        """Each turn's prompt text, image tags numbered across the conversation."""
        return [self.user_prompt(content) for content in user_contents(record)]

    @staticmethod
    def answers(record: Record) -> list[str]:
        """Each turn's training target: the answer and its end tokens."""
        last = len(record.conversations) - 1
        return [
            turn.assistant + ANSWER_END + (SEQUENCE_END if index == last else "")
            for index, turn in enumerate(record.conversations)
        ]

    def encode(self, record: Record, image_token_counts: Sequence[int]) -> EncodedRecord:
        """Token ids and labels for a record whose i-th image expands to ``image_token_counts[i]`` tokens."""
        # IMAGE_TAG has one group, so a split alternates text chunks and tag numbers: one regex pass.
        parts_per_prompt = [IMAGE_TAG.split(prompt) for prompt in self.prompts(record)]
        flat_chunks = [chunk for parts in parts_per_prompt for chunk in parts[::2]]
        chunk_ids = iter(encoding.ids for encoding in self.tokenizer.encode_batch(flat_chunks, add_special_tokens=True))
        answer_ids = self.tokenizer.encode_batch(self.answers(record), add_special_tokens=False)
        input_ids: list[int] = []
        labels: list[int] = []
        for turn, (parts, answer) in enumerate(zip(parts_per_prompt, answer_ids)):
            prompt_ids = list(next(chunk_ids))
            if turn and prompt_ids[: len(self._sequence_start)] == self._sequence_start:
                del prompt_ids[: len(self._sequence_start)]
            for number in map(int, parts[1::2]):
                prompt_ids += [-number] * image_token_counts[number - 1]
                prompt_ids += next(chunk_ids)
            input_ids += prompt_ids
            labels += [IGNORE_INDEX] * len(prompt_ids)
            input_ids += answer.ids
            labels += answer.ids
        return EncodedRecord(input_ids, labels)

    def count_tokens(self, record: Record, image_token_counts: Sequence[int]) -> int:
        """The number of tokens the trainer feeds for this record."""
        return len(self.encode(record, image_token_counts))


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)


def _separate_chat_template(folder: Path) -> str | None:
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    json_file = folder / "chat_template.json"
    if json_file.is_file():
        return json.loads(json_file.read_text(encoding="utf-8")).get("chat_template")
    return None
