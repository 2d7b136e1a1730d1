"""Samples/s of the trainer's data path against the cookbook's collator approach, in one run.

    /work/venv/bin/python bench/train_data.py            # 64 records per workload
    /work/venv/bin/python bench/train_data.py --quick    # 12 records per workload

Two workloads with the images' real sizes and the real Phi-3.5-vision tokenizer and chat template
(``fixtures/tiny-phi3v`` ships them; both sides use the native processor, whose ids and pixels are the
public processor's):

- video: UCF-101-style records of 8 frames of 320x240, at ``num_crops`` 4 (the cookbook's choice);
- document: DocVQA-style records of one 1700x2200 page, at ``num_crops`` 16.

Each record goes through, one at a time (batch size 1, one process):

- ours: :class:`RecordDataset` (lazy load, EXIF transpose, RGB) + :class:`Phi3VCollator` (the image
  processor per record, ids and labels from the core's prompt builder);
- cookbook: ``phi3v_dataset.py``'s dataset and collator: ``PIL.Image.open``, the chat template
  through the transformers tokenizer, the whole processor (prompt split, tokenization, image runs)
  per turn, the answer tokenized again, tensors concatenated per record and again per batch.

It prints records/s for each side and the ratio, and checks that both feed the model the same ids,
labels and pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from phi3v_data.manifest import Manifest, read_manifest, split_entry, write_manifest
from phi3v_data.prompt import PromptBuilder
from phi3v_train.data import Phi3VCollator, RecordDataset, load_split
from phi3v_train.model import load_processor

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-phi3v"
WORKLOADS = {
    # name: (frames per record, frame size, num_crops, question)
    "video": (8, (320, 240), 4, "Classify the video into one of the following classes: ApplyEyeMakeup, Basketball."),
    "document": (1, (1700, 2200), 16, "What is the date mentioned in this letter?"),
}


def make_dataset(folder: Path, workload: str, records: int) -> Path:
    """A validated dataset folder of ``records`` records with noise JPEGs of the workload's size."""
    frames, size, _, question = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    lines = []
    for index in range(records):
        names = []
        for frame in range(frames):
            name = f"{index}.{frame}.jpg"
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "images" / name, quality=90)
            names.append(name)
        turn = {"images": names, "user": question, "assistant": "ApplyEyeMakeup" if frames > 1 else "1/8/93"}
        lines.append(json.dumps({"id": str(index), "source": "bench", "conversations": [turn]}))
    path = folder / "bench_train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_manifest(folder, Manifest(splits={"train": split_entry(path, records)}))
    return folder


def ours(folder: Path, processor) -> Callable[[int], dict[str, torch.Tensor]]:
    dataset = RecordDataset(load_split(folder, read_manifest(folder), "train"))
    collator = Phi3VCollator.for_processor(PromptBuilder.from_model_dir(MODEL), processor)
    return lambda index: collator([dataset[index]])


def cookbook(folder: Path, processor) -> Callable[[int], dict[str, torch.Tensor]]:
    """The cookbook's ``Phi3VDataset.__getitem__`` and ``Phi3VDataCollator`` (``phi3v_dataset.py``), batch size 1."""
    records = [json.loads(line) for line in (folder / "bench_train.jsonl").read_text().splitlines()]
    pad = processor.tokenizer.pad_token_id

    def get_item(index: int) -> dict[str, torch.Tensor]:
        ids, labels, pixel_values, image_sizes = [], [], [], []
        for turn in records[index]["conversations"]:
            images = [Image.open(folder / "images" / name) for name in turn["images"]]
            tags = "".join(f"<|image_{number}|>" for number in range(1, len(images) + 1))
            prompt = processor.tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{tags}\n{turn['user']}"}], tokenize=False, add_generation_prompt=True
            )
            inputs = processor(prompt, images, return_tensors="pt")
            answer = processor.tokenizer(
                f"{turn['assistant']}<|end|>\n<|endoftext|>", add_special_tokens=False, return_tensors="pt"
            )["input_ids"]
            ids.append(torch.cat([inputs["input_ids"], answer], dim=1)[0])
            labels.append(torch.cat([torch.full((inputs["input_ids"].shape[1],), -100), answer[0]]))
            pixel_values.append(inputs["pixel_values"])
            image_sizes.append(inputs["image_sizes"])
        return {"input_ids": torch.cat(ids), "labels": torch.cat(labels), "pixel_values": torch.cat(pixel_values), "image_sizes": torch.cat(image_sizes)}

    def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        input_ids = torch.nn.utils.rnn.pad_sequence([example["input_ids"] for example in examples], batch_first=True, padding_value=pad)
        return {
            "input_ids": input_ids,
            "labels": torch.nn.utils.rnn.pad_sequence([example["labels"] for example in examples], batch_first=True, padding_value=-100),
            "attention_mask": input_ids != pad,
            "pixel_values": torch.cat([example["pixel_values"] for example in examples]),
            "image_sizes": torch.cat([example["image_sizes"] for example in examples]),
        }

    return lambda index: collate([get_item(index)])


def same_batches(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """Both sides feed the model the same ids, labels and pixels."""
    return all(torch.equal(first[key], second[key]) for key in ("input_ids", "labels", "pixel_values", "image_sizes"))


def records_per_second(item: Callable[[int], dict[str, torch.Tensor]], records: int) -> float:
    start = time.perf_counter()
    for index in range(records):
        item(index)
    return records / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 records per workload instead of 64")
    arguments = parser.parse_args()
    records = 12 if arguments.quick else 64
    torch.set_num_threads(1)
    same = True
    with tempfile.TemporaryDirectory() as workdir:
        print(f"{'workload':<10} {'num_crops':>9} {'ours rec/s':>11} {'cookbook rec/s':>15} {'ratio':>6}")
        for workload, (_, _, num_crops, _) in WORKLOADS.items():
            folder = make_dataset(Path(workdir) / workload, workload, records)
            processor = load_processor(MODEL, num_crops=num_crops)
            ours_item, cookbook_item = ours(folder, processor), cookbook(folder, processor)
            same &= all(same_batches(ours_item(index), cookbook_item(index)) for index in range(2))
            ours_rate = records_per_second(ours_item, records)
            cookbook_rate = records_per_second(cookbook_item, records)
            print(f"{workload:<10} {num_crops:>9} {ours_rate:>11.2f} {cookbook_rate:>15.2f} {ours_rate / cookbook_rate:>5.2f}x")
    print("ids, labels and pixels identical on both sides" if same else "the two sides DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
