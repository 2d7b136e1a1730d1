"""The data path: validated records, lazily loaded images, the collator's ids, labels, masks and pixels."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from train_fixtures import MIXED_RECORDS, TINY_MODEL, VAL_RECORD, train_config, write_dataset
from PIL import Image

from phi3v_data.errors import UnvalidatedDatasetError, UsageError
from phi3v_data.hd_crop import image_token_count
from phi3v_data.manifest import read_manifest, require_validated
from phi3v_data.cli import main as phi3v_data
from phi3v_data.prompt import IGNORE_INDEX, PromptBuilder
from phi3v_data.validation import validate
from phi3v_train.cli import main
from phi3v_train.data import (
    DataLoadError,
    Phi3VCollator,
    ProcessorMismatchError,
    RecordDataset,
    choose_split,
    default_num_crops,
    drop_too_long,
    load_split,
    pad_batch,
    record_length,
)
from phi3v_train.validated import open_dataset
from phi3v_train import trainer
from phi3v_train.trainer import gradient_accumulation_steps, needs_unused_parameter_search

PAD = 32000  # <|endoftext|>: the pad token and the last answer token of Phi-3.5-vision


@pytest.fixture(scope="module")
def mixed(mixed_dataset) -> dict:
    """The mixed training records by id, and their dataset items (images loaded)."""
    records = load_split(mixed_dataset, require_validated(mixed_dataset), "train")
    dataset = RecordDataset(records)
    return {entry.record.id: dataset[index] for index, entry in enumerate(records)}


def test_records_are_read_in_file_order_with_their_location(mixed_dataset, mixed):
    records = load_split(mixed_dataset, require_validated(mixed_dataset), "train")
    assert [entry.record.id for entry in records] == [record["id"] for record in MIXED_RECORDS]
    assert records[1].location == f"{mixed_dataset / 'test_train.jsonl'}:2"
    assert records[0].images_root == (mixed_dataset / "images").resolve()


def test_images_open_lazily_with_their_exif_rotation(mixed):
    assert [image.size for image in mixed["two-images"]["images"]] == [(64, 48), (30, 60)]
    rotated = mixed["two-turns"]["images"][0]
    assert rotated.size == (48, 64) and rotated.mode == "RGB"  # stored 64x48, EXIF orientation 6
    assert mixed["text-only"]["images"] == []


def test_ids_and_labels_are_the_prompt_builders_with_the_processors_image_counts(mixed, collator, builder):
    example = mixed["two-images"]
    encoded = collator.encode(example["entry"], example["images"])
    counts = [image_token_count(64, 48, 1), image_token_count(30, 60, 1)]
    assert encoded["input_ids"] == builder.encode(example["entry"].record, counts).input_ids
    assert encoded["labels"] == builder.encode(example["entry"].record, counts).labels
    ids = encoded["input_ids"]
    assert ids.count(-1) == counts[0] and ids.count(-2) == counts[1]
    assert encoded["pixel_values"].shape == (2, 2, 3, 336, 336)  # num_crops 1: a global view and one crop
    answer = [token for token, label in zip(ids, encoded["labels"]) if label != IGNORE_INDEX]
    assert answer == _ids(builder, "The first.<|end|>\n<|endoftext|>")


def test_the_rotated_image_is_counted_at_its_displayed_size(mixed, collator):
    example = mixed["two-turns"]
    encoded = collator.encode(example["entry"], example["images"])
    assert encoded["input_ids"].count(-1) == image_token_count(48, 64, 1)
    # The HD grid of a portrait image is taller than wide: (height, width) of the padded image.
    height, width = encoded["image_sizes"][0].tolist()
    assert height >= width


def test_both_answers_of_a_multi_turn_record_are_trained(mixed, collator, builder):
    example = mixed["two-turns"]
    encoded = collator.encode(example["entry"], example["images"])
    labelled = [token if label != IGNORE_INDEX else None for token, label in zip(encoded["input_ids"], encoded["labels"])]
    runs, current = [], []
    for token in labelled + [None]:
        if token is None and current:
            runs.append(current)
            current = []
        elif token is not None:
            current.append(token)
    assert runs == [_ids(builder, "Green.<|end|>\n"), _ids(builder, "Yes.<|end|>\n<|endoftext|>")]


def _ids(builder: PromptBuilder, text: str) -> list[int]:
    return builder.tokenizer.encode(text, add_special_tokens=False).ids


def test_a_batch_is_right_padded_with_a_mask_from_the_lengths(mixed, collator):
    batch = collator([mixed["text-only"], mixed["two-images"], mixed["tagged"]])
    lengths = [len(collator.encode(mixed[key]["entry"], mixed[key]["images"])["input_ids"]) for key in ("text-only", "two-images", "tagged")]
    assert batch["input_ids"].shape == (3, max(lengths))
    for row, length in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (max(lengths) - length)
        assert batch["input_ids"][row, length - 1] == PAD  # the real final <|endoftext|> stays visible
        assert batch["labels"][row, length - 1] == PAD
        assert (batch["input_ids"][row, length:] == PAD).all()
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
    # The text-only record adds no image; the others' three images follow in batch order.
    assert batch["pixel_values"].shape == (3, 2, 3, 336, 336)
    assert batch["image_sizes"].shape == (3, 2)
    alone = collator([mixed["tagged"]])
    assert torch.equal(batch["pixel_values"][2], alone["pixel_values"][0])


def test_a_text_only_batch_has_no_pixels(mixed, collator):
    batch = collator([mixed["text-only"]])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}


def test_pixel_values_are_padded_over_crops_before_concatenation():
    small = {"input_ids": [1, -1], "labels": [IGNORE_INDEX, IGNORE_INDEX], "pixel_values": torch.ones(1, 2, 3, 4, 4), "image_sizes": torch.tensor([[336, 336]])}
    large = {"input_ids": [1, -1, -1], "labels": [IGNORE_INDEX] * 3, "pixel_values": torch.ones(2, 5, 3, 4, 4), "image_sizes": torch.tensor([[336, 672], [672, 336]])}
    batch = pad_batch([small, large], PAD)
    assert batch["pixel_values"].shape == (3, 5, 3, 4, 4)
    assert batch["pixel_values"][0, :2].eq(1).all() and batch["pixel_values"][0, 2:].eq(0).all()
    assert batch["image_sizes"].tolist() == [[336, 336], [336, 672], [672, 336]]


def test_a_processor_that_counts_image_tokens_differently_fails_loudly(mixed, builder, processor):
    class MiscountingImageProcessor:
        num_crops = 1

        def __call__(self, images, return_tensors):
            processed = processor.image_processor(images, return_tensors=return_tensors)
            processed["num_img_tokens"] = [count + 1 for count in processed["num_img_tokens"]]
            return processed

    collator = Phi3VCollator(builder, MiscountingImageProcessor(), PAD)
    with pytest.raises(ProcessorMismatchError, match=r"test_train.jsonl:4 \(id tagged\).*314 tokens for a 64x48 image"):
        collator([mixed["tagged"]])


def test_lengths_are_the_validators_and_long_records_are_skipped_not_cut(mixed_dataset, collator, builder, tmp_path):
    records = load_split(mixed_dataset, require_validated(mixed_dataset), "train")
    lengths_file = tmp_path / "lengths.jsonl"
    validate([mixed_dataset / "test_train.jsonl"], model_dir=TINY_MODEL, num_crops=1, lengths_file=lengths_file, workers=1)
    validator = {line["id"]: line["tokens"] for line in map(json.loads, lengths_file.read_text().splitlines())}
    dataset = RecordDataset(records)
    for index, entry in enumerate(records):
        trained = len(collator.encode(entry, dataset[index]["images"])["input_ids"])
        assert record_length(entry, builder, 1) == trained == validator[entry.record.id]
    limit = sorted(validator.values())[1]
    kept, skipped = drop_too_long(records, builder, 1, limit)
    assert skipped == 2 and [entry.record.id for entry in kept] == [r for r in validator if validator[r] <= limit]
    assert drop_too_long(records, builder, 1, None) == (records, 0)


def test_num_crops_defaults_to_the_cookbooks_choice(mixed_dataset, folder_dataset):
    assert default_num_crops(load_split(mixed_dataset, require_validated(mixed_dataset), "train")) == 4
    assert default_num_crops(load_split(folder_dataset, require_validated(folder_dataset), "train")) == 16


def test_splits_are_chosen_by_name_or_preference(folder_dataset):
    manifest = read_manifest(folder_dataset)
    assert choose_split(manifest, folder_dataset, "test", "--split") == "test"
    assert choose_split(manifest, folder_dataset, None, "--split") == "val"
    with pytest.raises(UsageError, match=r"has no 'dev' split \(it has: train, val, test\); choose one with --train-split"):
        choose_split(manifest, folder_dataset, "dev", "--train-split")


def test_data_whose_manifest_does_not_match_is_refused(folder_dataset, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(folder_dataset, changed)
    with (changed / "folder_train.jsonl").open("a") as file:
        file.write("\n")
    result = CliRunner().invoke(main, ["--data", str(changed), "--model", str(TINY_MODEL), "--mode", "lora", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2  # a refusal of unvalidated data, not errors found in it
    assert "folder_train.jsonl changed since it was validated (sha256 differs)" in result.stderr
    assert f"phi3v-data validate {changed} --write-manifest" in result.output and "--validate" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_validate_accepts_a_valid_dataset_without_a_manifest_and_refuses_a_broken_one(mixed_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(mixed_dataset, copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(UnvalidatedDatasetError, match="validate it first"):
        open_dataset(copy, validate_now=False)
    assert set(open_dataset(copy, validate_now=True).splits) == {"train", "val"}
    (copy / "images" / "wide.jpg").write_bytes(b"not an image")
    with pytest.raises(UnvalidatedDatasetError, match=r"does not validate .*test_train.jsonl:1 .*wide.jpg"):
        open_dataset(copy, validate_now=True)


@pytest.mark.parametrize(
    ("names", "splits"),
    [
        (["a_train", "a_val"], {"train": "a_train.jsonl", "val": "a_val.jsonl"}),
        # Two files would both be 'train': each keeps its stem, and neither is dropped.
        (["a_train", "b_train"], {"a_train": "a_train.jsonl", "b_train": "b_train.jsonl"}),
        (["a_train", "mine"], {"a_train": "a_train.jsonl", "mine": "mine.jsonl"}),
    ],
)
def test_validate_now_names_splits_as_the_written_manifest_does(mixed_dataset, tmp_path, names, splits):
    folder = tmp_path / "ds"
    shutil.copytree(mixed_dataset / "images", folder / "images")
    for name in names:
        (folder / f"{name}.jsonl").write_text(json.dumps(VAL_RECORD | {"id": name}) + "\n", encoding="utf-8")
    validated_now = open_dataset(folder, validate_now=True)
    assert {name: entry.file for name, entry in validated_now.splits.items()} == splits
    result = CliRunner().invoke(phi3v_data, ["validate", str(folder), "--write-manifest"])
    assert result.exit_code == 0, result.output
    assert read_manifest(folder).splits == validated_now.splits


def test_an_image_that_stops_decoding_after_validation_names_its_record(tmp_path):
    folder = write_dataset(tmp_path / "ds", {"train": MIXED_RECORDS[3:]}, {"wide.jpg": Image.new("RGB", (64, 48))})
    (folder / "images" / "wide.jpg").write_bytes(b"\xff\xd8 broken")
    # require_validated refuses it now (test_train_validated.py); this is a change while training.
    entry = load_split(folder, read_manifest(folder), "train")[0]
    with pytest.raises(DataLoadError, match=r"test_train.jsonl:1 \(id tagged\): cannot decode .*wide.jpg.*--images decode"):
        RecordDataset([entry])[0]


def test_the_global_batch_is_split_over_processes_and_accumulation():
    assert gradient_accumulation_steps(64, 1, 8) == 8
    assert gradient_accumulation_steps(16, 2, 2) == 4
    with pytest.raises(UsageError, match="--batch-size 16 is not a multiple of --micro-batch-size 3 x 2"):
        gradient_accumulation_steps(16, 3, 2)


def test_ddp_searches_for_unused_weights_only_when_some_can_miss_a_gradient(tmp_path):
    def config(**overrides):
        return train_config(tmp_path, [tmp_path], **overrides)

    assert needs_unused_parameter_search(config(mode="full"), has_text_only=False)
    assert not needs_unused_parameter_search(config(mode="frozen-vision"), has_text_only=True)
    assert not needs_unused_parameter_search(config(mode="lora"), has_text_only=False)
    assert needs_unused_parameter_search(config(mode="qlora"), has_text_only=True)
    assert not needs_unused_parameter_search(config(mode="lora", freeze_vision=True), has_text_only=True)


def test_a_folder_for_both_data_and_eval_data_is_checked_once(folder_dataset, builder, tmp_path, monkeypatch):
    opened = []

    def open_and_count(folder, validate_now):
        opened.append(folder)
        return open_dataset(folder, validate_now)

    monkeypatch.setattr(trainer, "open_dataset", open_and_count)
    data = trainer.prepare_data(train_config(tmp_path, [folder_dataset], eval_data=folder_dataset), builder)
    assert opened == [folder_dataset]
    assert (len(data.train), len(data.eval), data.num_crops, data.skipped) == (4, 2, 1, 0)
