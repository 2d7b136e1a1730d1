"""``phi3v-train eval``: generate each record's last answer and score it (exact match, ANLS).

The prompt is the record as trained, cut where its last answer starts: earlier turns keep their
answers, and the token ids come from the same prompt builder. Decoding is greedy and stops at
``<|end|>`` or ``<|endoftext|>``, with ``generate`` and its KV cache, ``--batch-size`` records at a time
(left-padded). References are ``meta.answers`` when the record has them (DocVQA
keeps every annotator's answer there; for a record grouped by page, its last question's), else the last
assistant text. Records are shared among processes when launched with several.

Predictions go to ``--output-dir`` (or the file ``--predictions``). By default that is the model's own
folder only when phi3v-train trained it (it holds ``phi3v_train.yaml``); a model you did not train is
never written into: its predictions go to ``MODEL-eval`` beside its folder, or ``./NAME-eval`` for a
Hugging Face model id.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from phi3v_data.atomic import atomic_write_bytes
from phi3v_data.format import Record
from phi3v_data.metrics import anls, exact_match, mean
from phi3v_data.prompt import ANSWER_END, IGNORE_INDEX, SEQUENCE_END, PromptBuilder
from phi3v_train.config import EvalConfig
from phi3v_train.data import DatasetRecord, Phi3VCollator, RecordDataset, drop_too_long, pad_batch, split_records
from phi3v_train.validated import open_dataset
from phi3v_train.hardware import Hardware, Numerics, resolve_numerics
from phi3v_train.model import (
    adapter_base_model,
    is_adapter_dir,
    load_processor,
    load_trained,
)
from phi3v_train.model_files import model_files_dir, require_model_weights
from phi3v_train.progress import RecordProgress, terminal
from phi3v_train.run_folder import is_run_folder

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One record's generated answer and its scores."""

    id: str
    prediction: str
    references: list[str]
    exact_match: float
    anls: float


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Scores over a split and where the predictions were written."""

    split: str
    records: int
    exact_match: float
    anls: float
    predictions_file: Path
    skipped_records: int = 0


def reference_answers(record: Record) -> list[str]:
    """The acceptable answers to the record's last turn."""
    meta = record.meta or {}
    answers = meta.get("answers")
    questions = meta.get("questions")
    if isinstance(questions, list) and len(questions) == len(record.conversations) and isinstance(questions[-1], dict):
        answers = questions[-1].get("answers")
    if isinstance(answers, list) and answers and all(isinstance(answer, str) for answer in answers):
        return answers
    return [record.conversations[-1].assistant]


def prompt_length(labels: list[int]) -> int:
    """Where the last answer starts: its labels are the final run of non-ignored positions."""
    end = len(labels)
    while end and labels[end - 1] != IGNORE_INDEX:
        end -= 1
    return end


@torch.no_grad()
def greedy_answers(
    model, batch: dict[str, torch.Tensor], stop_ids: set[int], pad_token_id: int, max_new_tokens: int
) -> list[list[int]]:
    """Each row's new token ids, greedily with the KV cache, up to its first stop id or the limit."""
    prompt_length = batch["input_ids"].shape[1]
    output = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=sorted(stop_ids),
        pad_token_id=pad_token_id,
        use_cache=True,
    )
    answers = []
    for row in output[:, prompt_length:].tolist():
        stop = next((index for index, token in enumerate(row) if token in stop_ids), len(row))
        answers.append(row[:stop])
    return answers


def predictions_folder(config: EvalConfig) -> Path:
    """Where predictions go: --output-dir, else the model's folder if phi3v-train trained it, else beside it."""
    if config.output_dir is not None:
        return config.output_dir
    if not config.model.is_dir():
        return Path(f"{config.model.name}-eval")  # a Hub id: its last part, in the current folder
    if is_run_folder(config.model):
        return config.model
    folder = config.model.resolve()  # "." has no name of its own
    return folder.parent / f"{folder.name}-eval"


def _check_model_files(config: EvalConfig, base_model: str | None) -> None:
    if base_model is None:
        require_model_weights(config.model)
    else:
        require_model_weights(base_model, option="the adapter's base model")


def run_evaluation(config: EvalConfig, echo: Echo | None = None) -> EvalReport | None:
    """Score a trained model on a split; returns the report on the main process (None on the others)."""
    hardware = Hardware.detect()
    state = PartialState(cpu=not hardware.cuda)
    echo = echo or (lambda message: print(message, flush=True) if state.is_main_process else None)
    base_model = adapter_base_model(config.model, config.base_model) if is_adapter_dir(config.model) else None
    _check_model_files(config, base_model)
    numerics = resolve_numerics(config.attn, config.precision, hardware)
    for note in numerics.notes:
        echo(note)

    builder = PromptBuilder.from_model_dir(model_files_dir(str(config.model)))
    processor = load_processor(config.model)
    manifest = open_dataset(config.data, config.validate_data)
    split, records = split_records(config.data, manifest, config.split, "--split")
    records, skipped = drop_too_long(records, builder, processor.image_processor.num_crops, config.max_length)
    if skipped:
        echo(f"skipped {skipped} records longer than --max-length {config.max_length}")
    records = records[: config.limit] if config.limit else records

    model = load_trained(config.model, numerics, base_model).to(state.device).eval()
    collator = Phi3VCollator.for_processor(builder, processor)
    stop_ids = {builder.tokenizer.token_to_id(token) for token in (ANSWER_END.strip(), SEQUENCE_END)}
    dataset = RecordDataset(records)
    mine = list(range(state.process_index, len(dataset), state.num_processes))
    progress = RecordProgress(len(mine), echo, terminal() if state.is_main_process else None)
    local = []
    for start in range(0, len(mine), config.batch_size):
        indices = mine[start : start + config.batch_size]
        examples = [dataset[index] for index in indices]
        predictions = _predict(model, collator, examples, stop_ids, config.max_new_tokens, state.device, numerics)
        local += zip(indices, predictions)
        progress.advance(len(indices))
    progress.close()
    predictions = [prediction for _, prediction in sorted(gather_object(local), key=lambda pair: pair[0])]
    if not state.is_main_process:
        return None

    output = config.predictions or predictions_folder(config) / f"predictions_{split}.jsonl"
    atomic_write_bytes(output, b"".join(orjson.dumps(asdict(prediction)) + b"\n" for prediction in predictions))
    report = EvalReport(
        split,
        len(predictions),
        mean(prediction.exact_match for prediction in predictions),
        mean(prediction.anls for prediction in predictions),
        output,
        skipped,
    )
    echo(
        f"{split}: exact match {report.exact_match:.4f}, ANLS {report.anls:.4f} over {report.records} records; "
        f"predictions in {output}"
    )
    return report


def _predict(
    model,
    collator: Phi3VCollator,
    examples: list[dict[str, Any]],
    stop_ids: set[int],
    max_new_tokens: int,
    device,
    numerics: Numerics,
) -> list[Prediction]:
    prompts = []
    for example in examples:
        encoded = collator.encode(example["entry"], example["images"])
        cut = prompt_length(encoded["labels"])
        prompts.append({**encoded, "input_ids": encoded["input_ids"][:cut], "labels": encoded["labels"][:cut]})
    padded = pad_batch(prompts, collator.pad_token_id, left=True)
    batch = {key: value.to(device) for key, value in padded.items() if key != "labels"}
    with _autocast(device, numerics):
        answers = greedy_answers(model, batch, stop_ids, collator.pad_token_id, max_new_tokens)
    predictions = []
    for example, tokens in zip(examples, answers):
        entry: DatasetRecord = example["entry"]
        text = collator.builder.tokenizer.decode(tokens, skip_special_tokens=True)
        references = reference_answers(entry.record)
        predictions.append(
            Prediction(entry.record.id, text.strip(), references, exact_match(text, references), anls(text, references))
        )
    return predictions


def _autocast(device: torch.device, numerics: Numerics):
    if numerics.precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, numerics.compute_dtype_name))
