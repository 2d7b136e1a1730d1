"""``phi3v-train eval``: prompts cut before the last answer, greedy answers, references, scores, predictions."""

import json

import pytest
import torch
from click.testing import CliRunner
from train_fixtures import MIXED_RECORDS, TINY_MODEL, step_losses, train_config, write_dataset
from PIL import Image

from phi3v_data.format import Record
from phi3v_data.manifest import require_validated
from phi3v_train.cli import main
from phi3v_train.data import RecordDataset, load_split, pad_batch
from phi3v_train.evaluate import greedy_answers, prompt_length, reference_answers
from phi3v_train.hardware import Numerics
from phi3v_train.model import load_model
from phi3v_train.trainer import run_training

RED_RECORD = {
    "id": "red",
    "source": "test",
    "conversations": [{"images": ["red.jpg"], "user": "Is it red?", "assistant": "Yes."}],
    "meta": {"answers": ["yes", "Yes, it is."]},
}


def record(data: dict) -> Record:
    return Record.model_validate_json(json.dumps(data))


def test_references_are_the_meta_answers_else_the_last_answer():
    assert reference_answers(record(MIXED_RECORDS[3])) == ["1/8/93", "01/08/93"]
    assert reference_answers(record(MIXED_RECORDS[1])) == ["Yes."]
    grouped = {
        **MIXED_RECORDS[1],
        "meta": {"questions": [{"answers": ["green"]}, {"answers": ["yes", "sure"]}]},
    }
    assert reference_answers(record(grouped)) == ["yes", "sure"]
    assert reference_answers(record({**MIXED_RECORDS[1], "meta": {"answers": "not a list"}})) == ["Yes."]


def test_the_prompt_ends_where_the_last_answer_starts():
    assert prompt_length([-100, -100, 5, 6, -100, -100, 7, 8, 9]) == 6
    assert prompt_length([-100, -100]) == 2


def _prompt(collator, item):
    encoded = collator.encode(item["entry"], item["images"])
    cut = prompt_length(encoded["labels"])
    return {**encoded, "input_ids": encoded["input_ids"][:cut], "labels": encoded["labels"][:cut]}


def _without_labels(batch):
    return {key: value for key, value in batch.items() if key != "labels"}


def test_batched_greedy_answers_are_each_records_answer_alone(mixed_dataset, collator):
    dataset = RecordDataset(load_split(mixed_dataset, require_validated(mixed_dataset), "train"))
    prompts = [_prompt(collator, dataset[index]) for index in range(len(dataset))]
    model = load_model(str(TINY_MODEL), Numerics("sdpa", "fp32"), use_cache=True).eval()

    together = greedy_answers(model, _without_labels(pad_batch(prompts, 32000, left=True)), set(), 32000, 3)
    alone = [greedy_answers(model, _without_labels(pad_batch([prompt], 32000)), set(), 32000, 3)[0] for prompt in prompts]

    assert together == alone and all(len(tokens) == 3 for tokens in alone)
    # The first token is the model's choice for the prompt with its images.
    with torch.no_grad():
        logits = model(**_without_labels(pad_batch(prompts[:1], 32000))).logits
    assert alone[0][0] == int(logits[0, -1].argmax())


def test_answers_stop_at_the_first_stop_id(mixed_dataset, collator):
    dataset = RecordDataset(load_split(mixed_dataset, require_validated(mixed_dataset), "train"))
    batch = _without_labels(pad_batch([_prompt(collator, dataset[0])], 32000))
    model = load_model(str(TINY_MODEL), Numerics("sdpa", "fp32"), use_cache=True).eval()
    free = greedy_answers(model, batch, set(), 32000, 4)[0]

    stopped = greedy_answers(model, batch, {free[2]}, 32000, 4)[0]

    assert stopped == free[: free.index(free[2])]


@pytest.mark.slow
def test_a_model_that_learned_a_record_answers_it_exactly(tmp_path):
    dataset = write_dataset(
        tmp_path / "red", {"train": [RED_RECORD], "val": [{**RED_RECORD, "id": "red-val"}]}, {"red.jpg": Image.new("RGB", (64, 48), (220, 20, 20))}
    )
    config = train_config(tmp_path / "out", [dataset], mode="full", max_steps=30, learning_rate=1e-2)
    losses = step_losses(run_training(config).log_history)
    assert losses[30] < losses[1] / 3

    result = CliRunner().invoke(main, ["eval", "--model", str(config.output_dir), "--data", str(dataset), "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert "val: exact match 1.0000, ANLS 1.0000 over 1 records" in result.output
    predictions = [json.loads(line) for line in (config.output_dir / "predictions_val.jsonl").read_text().splitlines()]
    assert predictions == [
        {"id": "red-val", "prediction": "Yes.", "references": ["yes", "Yes, it is."], "exact_match": 1.0, "anls": 1.0}
    ]


@pytest.mark.slow
def test_an_adapter_is_evaluated_on_its_base_model(mixed_dataset, tmp_path):
    config = train_config(tmp_path / "out", [mixed_dataset], max_steps=1)
    run_training(config)
    predictions_file = tmp_path / "predictions.jsonl"
    result = CliRunner().invoke(
        main,
        ["eval", "--model", str(config.output_dir), "--data", str(mixed_dataset), "--split", "train",
         "--max-new-tokens", "2", "--predictions", str(predictions_file), "--limit", "3", "--batch-size", "2"],
    )
    assert result.exit_code == 0, result.output
    predictions = [json.loads(line) for line in predictions_file.read_text().splitlines()]
    assert [prediction["id"] for prediction in predictions] == ["two-images", "two-turns", "text-only"]
    assert predictions[1]["references"] == ["Yes."]
    assert all(0.0 <= prediction["anls"] <= 1.0 and prediction["exact_match"] in (0.0, 1.0) for prediction in predictions)
    assert "train: exact match" in result.output and "over 3 records" in result.output
