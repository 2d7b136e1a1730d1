"""How training batches are formed: padded or packed (``--packing``), in random order or grouped by length.

``--group-by-length`` hands transformers' ``LengthGroupedSampler`` each record's exact token count (the
prompt builder's, counted from the image headers, or read from ``phi3v-data validate --lengths FILE``):
records of similar length share a step, steps come in a shuffled order, and the order follows ``--seed``
(the Trainer seeds the generator and restores it when resuming).
"""

from __future__ import annotations

from pathlib import Path

import orjson
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler

from phi3v_data.errors import UsageError
from phi3v_data.prompt import PromptBuilder
from phi3v_train.config import TrainConfig
from phi3v_train.data import DatasetRecord, Phi3VCollator, record_length
from phi3v_train.packing import PackingCollator, refuse_records_longer_than


def training_collator(config: TrainConfig, collator: Phi3VCollator):
    """The collator of the run: packed rows with ``--packing``, else right-padded batches."""
    return PackingCollator(collator, config.max_tokens_per_batch) if config.packing else collator


def record_lengths(
    config: TrainConfig, records: list[DatasetRecord], builder: PromptBuilder, num_crops: int
) -> list[int] | None:
    """Token counts of the training records when the run needs them (length grouping, packed row limits)."""
    if not config.group_by_length and config.max_tokens_per_batch is None:
        return None
    known = _lengths_file(config.lengths) if config.lengths else {}
    lengths = [known.get(entry.record.id) or record_length(entry, builder, num_crops) for entry in records]
    if config.max_tokens_per_batch is not None:
        refuse_records_longer_than(records, lengths, config.max_tokens_per_batch)
    return lengths


def _lengths_file(path: Path) -> dict[str, int]:
    """``{"file", "line", "id", "tokens"}`` lines, by record id."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as error:
        raise UsageError(f"--lengths {path}: cannot read it ({error.strerror})") from None
    counts = {}
    for number, line in enumerate(lines, start=1):
        try:
            row = orjson.loads(line)
            counts[str(row["id"])] = int(row["tokens"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UsageError(
                f"{path}:{number}: not a line of `phi3v-data validate --lengths` (want id and tokens)"
            ) from None
    return counts


class Phi3VTrainer(Trainer):
    """The HF Trainer, with a length-grouped order over exact token counts when given them."""

    def __init__(self, *args, record_lengths: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.record_lengths = record_lengths

    def _get_train_sampler(self, train_dataset=None):
        if self.record_lengths is None:
            return super()._get_train_sampler(train_dataset)
        return LengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=self.record_lengths
        )
