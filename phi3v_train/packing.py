"""Padding-free batches: a micro-batch's records side by side in rows, each record attending only to itself.

With ``--packing`` the records of a micro-batch are laid end to end into as few rows as fit
``--max-tokens-per-batch`` (first fit, longest first; one row when no limit is set). ``position_ids``
restart at every record, and no ``attention_mask`` is passed: from the restarts transformers builds a
block-diagonal causal mask for sdpa and eager, and flash-attention takes its variable-length path, so
attention never crosses a record boundary. Rows shorter than the longest are filled with a filler
segment that has positions of its own and no labels, so it neither sees nor is seen by a record.
Image features follow their record: ``pixel_values`` are concatenated in the order the records' images
appear in the rows. The loss is the mean over answer tokens, as for padded batches; records are never cut.

A micro-batch of a 900- and a 6,000-token record is 6,900 positions packed, 12,000 padded.
"""

from __future__ import annotations

from typing import Any

import torch

from phi3v_data.errors import UsageError
from phi3v_data.prompt import IGNORE_INDEX
from phi3v_train.data import DatasetRecord, Phi3VCollator, image_batch


class RecordTooLongError(UsageError):
    """A record does not fit one packed row."""


def first_fit_rows(lengths: list[int], max_tokens: int | None) -> list[list[int]]:
    """Indices of ``lengths`` grouped into rows of at most ``max_tokens``, longest records placed first."""
    if max_tokens is None:
        return [list(range(len(lengths)))]
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda position: -lengths[position]):
        row = next((row for row, free in enumerate(room) if lengths[index] <= free), None)
        if row is None:
            rows.append([])
            room.append(max_tokens)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= lengths[index]
    return [sorted(row) for row in rows]


def pack_batch(encoded: list[dict[str, Any]], pad_token_id: int, max_tokens: int | None = None) -> dict[str, torch.Tensor]:
    """Encoded records (``input_ids``, ``labels``, images) packed into rows with restarting positions."""
    lengths = [len(item["input_ids"]) for item in encoded]
    rows = first_fit_rows(lengths, max_tokens)
    width = max(sum(lengths[index] for index in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    in_row_order = []
    for row, indices in enumerate(rows):
        start = 0
        for index in indices:
            item, length = encoded[index], lengths[index]
            input_ids[row, start : start + length] = torch.tensor(item["input_ids"], dtype=torch.long)
            labels[row, start : start + length] = torch.tensor(item["labels"], dtype=torch.long)
            position_ids[row, start : start + length] = torch.arange(length)
            start += length
            in_row_order.append(item)
        # The filler restarts its positions too: a segment of its own that no record attends to.
        position_ids[row, start:] = torch.arange(width - start)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, **image_batch(in_row_order)}


class PackingCollator:
    """:class:`Phi3VCollator`'s encoding, packed instead of padded."""

    def __init__(self, collator: Phi3VCollator, max_tokens: int | None):
        self.collator = collator
        self.max_tokens = max_tokens

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [self.collator.encode(example["entry"], example["images"]) for example in examples]
        return pack_batch(encoded, self.collator.pad_token_id, self.max_tokens)


def refuse_records_longer_than(records: list[DatasetRecord], lengths: list[int], max_tokens: int) -> None:
    """A UsageError naming the first record that cannot fit a row of ``max_tokens``."""
    for entry, length in zip(records, lengths):
        if length > max_tokens:
            raise RecordTooLongError(
                f"{entry.location} (id {entry.record.id}) has {length} tokens, more than --max-tokens-per-batch "
                f"{max_tokens}: records are never cut; raise the limit or skip such records with --max-length"
            )
