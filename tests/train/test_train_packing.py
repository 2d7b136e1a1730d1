"""Packed batches train exactly as padded ones: same per-record losses, same gradients, no cross-record attention."""

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import TINY_MODEL

from phi3v_data.manifest import require_validated
from phi3v_data.prompt import IGNORE_INDEX
from phi3v_train.data import RecordDataset, load_split
from phi3v_train.hardware import Numerics
from phi3v_train.model import load_model
from phi3v_train.packing import PackingCollator, RecordTooLongError, first_fit_rows, refuse_records_longer_than


@pytest.fixture(scope="module")
def examples(mixed_dataset):
    records = load_split(mixed_dataset, require_validated(mixed_dataset), "train")
    dataset = RecordDataset(records)
    return [dataset[index] for index in range(len(dataset))]


def segment_losses(logits, labels, position_ids):
    """Mean cross-entropy over each record's labelled tokens, records found where positions restart."""
    losses = []
    for row in range(labels.shape[0]):
        starts = (position_ids[row] == 0).nonzero().flatten().tolist() + [labels.shape[1]]
        for start, end in zip(starts, starts[1:]):
            targets = labels[row, start + 1 : end]
            if (targets != IGNORE_INDEX).any():
                losses.append(F.cross_entropy(logits[row, start : end - 1], targets, ignore_index=IGNORE_INDEX).item())
    return losses


def test_first_fit_puts_the_longest_records_first_and_keeps_each_row_in_order():
    assert first_fit_rows([5, 3, 9, 2], None) == [[0, 1, 2, 3]]
    assert first_fit_rows([5, 3, 9, 2], 10) == [[2], [0, 1, 3]]
    assert first_fit_rows([4, 4, 4], 8) == [[0, 1], [2]]


@pytest.mark.parametrize(("kernel", "max_tokens"), [("sdpa", None), ("sdpa", 800), ("eager", None)])
def test_a_packed_batch_gives_each_record_its_loss_alone_and_the_padded_batchs_gradients(
    collator, examples, kernel, max_tokens
):
    model = load_model(str(TINY_MODEL), Numerics(kernel, "fp32")).train()
    packed = PackingCollator(collator, max_tokens)(examples)
    padded = collator(examples)
    assert "attention_mask" not in packed and packed["input_ids"].numel() < padded["input_ids"].numel()
    if max_tokens:
        assert packed["input_ids"].shape[0] > 1 and packed["input_ids"].shape[1] <= max_tokens

    packed_out = model(**packed)
    packed_out.loss.backward()
    packed_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    padded_out = model(**padded)
    padded_out.loss.backward()

    alone = []
    for example in examples:
        batch = collator([example])
        logits = model(**batch).logits.detach()
        alone += segment_losses(logits, batch["labels"], torch.arange(batch["labels"].shape[1])[None])
    assert sorted(segment_losses(packed_out.logits.detach(), packed["labels"], packed["position_ids"])) == pytest.approx(
        sorted(alone), abs=1e-4
    )
    torch.testing.assert_close(packed_out.loss, padded_out.loss, atol=1e-5, rtol=1e-5)
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(packed_grads[name], parameter.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_record_longer_than_a_row_is_refused_with_its_id(examples):
    entries = [example["entry"] for example in examples]
    with pytest.raises(RecordTooLongError, match=r"\(id two-turns\) has 400 tokens, more than --max-tokens-per-batch 300"):
        refuse_records_longer_than(entries, [100, 400, 100, 100], 300)


def test_length_grouping_uses_exact_counts_or_the_validators_lengths_file(folder_dataset, builder, tmp_path):
    from phi3v_train.batching import record_lengths
    from phi3v_train.data import record_length
    from train_fixtures import train_config

    records = load_split(folder_dataset, require_validated(folder_dataset), "train")
    counted = record_lengths(train_config(tmp_path, [folder_dataset], group_by_length=True), records, builder, 1)
    assert counted == [record_length(entry, builder, 1) for entry in records]
    lengths_file = tmp_path / "lengths.jsonl"
    lengths_file.write_text("".join(f'{{"file": "f", "line": 1, "id": "{entry.record.id}", "tokens": 7}}\n' for entry in records[:2]))
    config = train_config(tmp_path, [folder_dataset], group_by_length=True, lengths=lengths_file)
    assert record_lengths(config, records, builder, 1) == [7, 7] + counted[2:]
    assert record_lengths(train_config(tmp_path, [folder_dataset]), records, builder, 1) is None


@pytest.mark.slow
def test_packed_and_length_grouped_runs_train(folder_dataset, mixed_dataset, tmp_path):
    from train_fixtures import step_losses, train_config

    from phi3v_train.trainer import run_training

    config = train_config(
        tmp_path / "out", [folder_dataset, mixed_dataset], max_steps=3, batch_size=4, micro_batch_size=4,
        packing=True, max_tokens_per_batch=2000, group_by_length=True,
    )
    result = run_training(config)
    assert sorted(step_losses(result.log_history)) == [1, 2, 3]
    assert all(loss == loss for loss in step_losses(result.log_history).values())  # no NaN


def test_the_length_grouped_order_puts_similar_lengths_in_one_step():
    from types import SimpleNamespace

    from transformers.trainer_pt_utils import LengthGroupedSampler

    from phi3v_train.batching import Phi3VTrainer

    lengths = [300, 3000] * 32
    trainer = SimpleNamespace(record_lengths=lengths, args=SimpleNamespace(train_batch_size=4, gradient_accumulation_steps=1))
    torch.manual_seed(0)
    sampler = Phi3VTrainer._get_train_sampler(trainer)
    order = list(sampler)

    assert isinstance(sampler, LengthGroupedSampler) and sorted(order) == list(range(64))
    steps = [{lengths[index] for index in order[start : start + 4]} for start in range(0, 64, 4)]
    assert sum(len(step) == 1 for step in steps) >= 10  # a random order would leave about 2 of 16 unmixed
