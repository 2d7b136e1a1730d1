"""The training recipe: validated data, the model in its mode, and the Hugging Face Trainer set up as the cookbook does.

Cookbook settings kept: AdamW (betas 0.9/0.95, eps 1e-7), linear schedule with warm-up, weight decay
0.01, gradient clipping at 1.0, non-reentrant activation checkpointing, DeepSpeed ZeRO-2 for full
fine-tunes, ``--batch-size`` reached with per-device micro-batches and gradient accumulation. Unlike
the cookbook, checkpoints keep the optimizer, scheduler, RNG and data position so ``--resume``
continues the same run, and logs go to stdout (other reporters are opt-in).

A run cannot go quietly wrong: it refuses an output folder holding another run (see
:mod:`phi3v_train.run_folder`), keeps the warm-up shorter than the run, and on Ctrl-C or SIGTERM saves a
checkpoint and says how to resume (see :mod:`phi3v_train.stopping`).
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback, TrainingArguments, set_seed

from phi3v_data.errors import UsageError
from phi3v_data.manifest import Manifest
from phi3v_data.prompt import PromptBuilder
from phi3v_train.config import TrainConfig
from phi3v_train.data import (
    DatasetRecord,
    Phi3VCollator,
    RecordDataset,
    default_num_crops,
    drop_too_long,
    split_records,
    train_records,
)
from phi3v_train.batching import Phi3VTrainer, record_lengths, training_collator
from phi3v_train.deepspeed import deepspeed_config, single_process_environment
from phi3v_train.hardware import Hardware, Numerics, resolve_numerics
from phi3v_train.model import (
    load_model,
    load_processor,
    model_reference,
    parameter_counts,
    prepare_for_mode,
)
from phi3v_train.model_files import model_files_dir, require_model_weights
from phi3v_train.progress import TrainingProgress, terminal
from phi3v_train.run_folder import (
    TrainingInterrupted,
    check_output_dir,
    checkpoint_to_resume,
    copy_run_record,
    data_fingerprint,
    interruption_message,
    refuse_another_run,
    remove_earlier_run,
    write_run_record,
)
from phi3v_train.stopping import StopOnSignal, WorkersLeaveSigtermToTraining
from phi3v_train.validated import manifest_notes, open_dataset

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a run did: the trained model, its logs and size, what it skipped and the memory it peaked at."""

    model: Any
    """The trained model (with its adapter), unwrapped from any distributed wrapper."""
    output_dir: Path
    log_history: list[dict[str, Any]]
    trainable_parameters: int
    total_parameters: int
    skipped_records: int
    peak_memory_bytes: int
    num_crops: int


@dataclass(frozen=True, slots=True)
class PreparedData:
    """Training and evaluation records after the length filter."""

    train: list[DatasetRecord]
    eval: list[DatasetRecord] | None
    num_crops: int
    skipped: int
    notes: list[str]
    fingerprint: list[dict[str, Any]]
    """Each training file's name, record count and sha256 (what --resume compares)."""


def world_size() -> int:
    """Processes in the run, as every launcher (torchrun, accelerate, deepspeed) announces it."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def gradient_accumulation_steps(batch_size: int, micro_batch_size: int, processes: int) -> int:
    """Steps of accumulation that make ``micro_batch_size x processes`` add up to ``batch_size``."""
    per_step = micro_batch_size * processes
    if batch_size % per_step:
        raise UsageError(
            f"--batch-size {batch_size} is not a multiple of --micro-batch-size {micro_batch_size} x "
            f"{processes} process(es) = {per_step}"
        )
    return batch_size // per_step


def needs_unused_parameter_search(config: TrainConfig, has_text_only: bool) -> bool:
    """Whether some trainable weights can miss a gradient in a step (DDP must then look for them).

    Full fine-tunes never use the CLIP layers after the feature layer; adapter runs trim those, but a
    batch of text-only records leaves the vision adapters without gradients.
    """
    if config.mode == "full":
        return True
    if config.mode == "frozen-vision":
        return False
    return has_text_only and not config.freeze_vision


def prepare_data(config: TrainConfig, builder: PromptBuilder) -> PreparedData:
    """Every --data folder's train split and the --eval-data split, too-long records dropped."""
    manifests: dict[Path, Manifest] = {}

    def manifest_of(folder: Path) -> Manifest:
        # The shipped configs name one folder for --data and --eval-data: check (hash or validate) it once.
        resolved = folder.resolve()
        if resolved not in manifests:
            manifests[resolved] = open_dataset(folder, config.validate_data)
        return manifests[resolved]

    train = train_records(config, manifest_of)
    if not train:
        raise UsageError(f"the {config.train_split} split of {', '.join(map(str, config.data))} holds no records")
    evaluation = None
    if config.eval_data is not None:
        manifest = manifest_of(config.eval_data)
        _, evaluation = split_records(config.eval_data, manifest, config.eval_split, "--eval-split")
    num_crops = config.num_crops or default_num_crops(train)
    notes = manifest_notes(config, manifest_of, num_crops)
    kept, skipped = drop_too_long(train, builder, num_crops, config.max_length)
    if skipped:
        notes.append(f"skipped {skipped} of {len(train)} training records longer than --max-length {config.max_length}")
    if not kept:
        raise UsageError(f"every training record is longer than --max-length {config.max_length}")
    kept_eval = None
    if evaluation is not None:
        kept_eval, skipped_eval = drop_too_long(evaluation, builder, num_crops, config.max_length)
        if skipped_eval:
            notes.append(f"skipped {skipped_eval} of {len(evaluation)} evaluation records too long")
    fingerprint = data_fingerprint([(folder, manifest_of(folder)) for folder in config.data], config.train_split)
    return PreparedData(kept, kept_eval, num_crops, skipped, notes, fingerprint)


def training_arguments(
    config: TrainConfig,
    numerics: Numerics,
    hardware: Hardware,
    accumulation: int,
    find_unused: bool,
    deepspeed: dict[str, Any] | str | None,
    warmup_steps: int,
):
    """The Trainer's arguments: the cookbook's optimizer and schedule, plus checkpoints that resume."""
    evaluating = config.eval_data is not None and config.eval_steps is not None
    return TrainingArguments(
        output_dir=str(config.output_dir),
        num_train_epochs=config.train_epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.micro_batch_size,
        per_device_eval_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        activation_checkpointing=config.activation_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        optim="adamw_torch",
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_epsilon=1e-7,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        lr_scheduler_type="linear",
        warmup_steps=warmup_steps,
        logging_steps=config.logging_steps,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.eval_steps if evaluating else None,
        save_strategy="steps" if config.save_steps else "no",
        **({"save_steps": config.save_steps} if config.save_steps else {}),
        save_total_limit=config.save_total_limit,
        bf16=numerics.precision == "bf16",
        fp16=numerics.precision == "fp16",
        seed=config.seed,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=config.report_to or "none",
        disable_tqdm=True,
        deepspeed=deepspeed,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=hardware.cuda,
        # Without it, processes started by a launcher on a machine without a GPU do not form a DDP group.
        use_cpu=not hardware.cuda,
        ddp_find_unused_parameters=find_unused,
    )


def optimizer_steps(config: TrainConfig, records: int, processes: int, accumulation: int) -> int:
    """The run's optimizer steps, counted as the Trainer counts them: --max-steps, else epochs x steps per epoch."""
    if config.max_steps is not None:
        return config.max_steps
    batches_per_process = math.ceil(math.ceil(records / config.micro_batch_size) / processes)
    steps_per_epoch = max(math.ceil(batches_per_process / accumulation), 1)
    return math.ceil(config.train_epochs * steps_per_epoch)


def peak_memory_bytes(hardware: Hardware) -> int:
    """Peak GPU memory allocated, or the process's peak resident memory on the CPU."""
    if hardware.cuda:
        return torch.cuda.max_memory_allocated()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def run_training(config: TrainConfig, echo: Echo | None = None) -> TrainResult:
    """Train as ``config`` says and save the model (or adapter) and its processor to ``output_dir``.

    Raises :class:`TrainingInterrupted` when Ctrl-C or SIGTERM stopped the run (after saving a checkpoint
    when training had started).
    """
    echo = echo or _print_on_main_process
    stop = StopOnSignal(echo)
    try:
        with stop.installed():
            return _train(config, echo, stop)
    except KeyboardInterrupt:
        raise TrainingInterrupted(interruption_message(stop.signal_name, config.output_dir)) from None
    except TrainingInterrupted:
        raise
    except Exception:
        # A SIGTERM sent to the whole process group also stops the data-loader workers, and the step then
        # fails for want of a batch: the run was still stopped on purpose, from its newest checkpoint.
        if stop.requested:
            raise TrainingInterrupted(interruption_message(stop.signal_name, config.output_dir)) from None
        raise


def _train(config: TrainConfig, echo: Echo, stop: StopOnSignal) -> TrainResult:
    if is_main_process():
        check_output_dir(config)  # before anything is read or written
    require_model_weights(config.model)
    builder = PromptBuilder.from_model_dir(model_files_dir(config.model))
    data = prepare_data(config, builder)  # refuses unvalidated data before anything slow
    accumulation = gradient_accumulation_steps(config.batch_size, config.micro_batch_size, world_size())
    total_steps = optimizer_steps(config, len(data.train), world_size(), accumulation)
    checkpoint = _checkpoint_to_continue(config, data, total_steps, echo)
    warmup, warmup_note = config.warmup_for(total_steps)
    hardware = Hardware.detect()
    numerics = resolve_numerics(config.attn, config.precision, hardware)
    for note in [*numerics.notes, *data.notes, *([warmup_note] if warmup_note else [])]:
        echo(note)
    processor = load_processor(config.model, data.num_crops)
    if processor.image_processor.num_crops != data.num_crops:
        raise UsageError(f"the processor of {config.model} ignored num_crops={data.num_crops}")
    deepspeed = deepspeed_config(config.deepspeed, not config.uses_adapter)
    if deepspeed is not None:
        os.environ.update(single_process_environment())

    set_seed(config.seed)  # the LoRA initialisation draws from it
    model = load_model(
        model_reference(config.model),
        numerics,
        quantize_4bit=config.mode == "qlora",
        device_map=_device_map(config, hardware),
    )
    model = prepare_for_mode(model, config)
    trainable, total = parameter_counts(model)
    echo(
        f"{config.mode}: {trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.2f}%), "
        f"attention {numerics.attn}, {numerics.precision}, {_deepspeed_name(deepspeed)}num_crops {data.num_crops}, "
        f"{len(data.train)} training records, batch {config.batch_size} = {config.micro_batch_size} x "
        f"{world_size()} process(es) x {accumulation} accumulation step(s)"
    )
    if is_main_process():
        _start_run_record(config, data.fingerprint, echo)

    has_text_only = any(not entry.record.images for entry in data.train)
    find_unused = needs_unused_parameter_search(config, has_text_only)
    arguments = training_arguments(config, numerics, hardware, accumulation, find_unused, deepspeed, warmup)
    lengths = record_lengths(config, data.train, builder, data.num_crops)
    trainer = Phi3VTrainer(
        model=model,
        args=arguments,
        record_lengths=lengths if config.group_by_length else None,
        data_collator=WorkersLeaveSigtermToTraining(
            training_collator(config, Phi3VCollator.for_processor(builder, processor))
        ),
        train_dataset=RecordDataset(data.train),
        eval_dataset=RecordDataset(data.eval) if data.eval else None,
        processing_class=processor,
    )
    _report_record_and_stop(trainer, config, echo, stop)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if stop.stopped_after is not None:
        stopped = interruption_message(stop.signal_name, config.output_dir, stop.stopped_after, total_steps)
        raise TrainingInterrupted(stopped)
    if data.eval:
        trainer.evaluate()
    trainer.save_model(str(config.output_dir))
    peak = peak_memory_bytes(hardware)
    echo(f"saved to {config.output_dir}; peak {'GPU' if hardware.cuda else 'resident'} memory {peak / 2**30:.2f} GiB")
    return TrainResult(
        trainer.accelerator.unwrap_model(trainer.model),
        config.output_dir,
        list(trainer.state.log_history),
        trainable,
        total,
        data.skipped,
        peak,
        data.num_crops,
    )


def _checkpoint_to_continue(config: TrainConfig, data: PreparedData, total_steps: int, echo: Echo) -> Path | None:
    """--resume's checkpoint once it is known to continue this very run (None: start from the beginning)."""
    checkpoint = checkpoint_to_resume(config, echo)
    if checkpoint is not None:
        refuse_another_run(checkpoint, config, data.fingerprint, total_steps)
        echo(f"resuming from {checkpoint}")
    return checkpoint


def _report_record_and_stop(trainer: Phi3VTrainer, config: TrainConfig, echo: Echo, stop: StopOnSignal) -> None:
    """The callbacks: progress instead of transformers' printer, the run record in checkpoints, stopping on signals."""
    trainer.remove_callback(PrinterCallback)
    progress = TrainingProgress(echo, terminal() if is_main_process() else None)
    for callback in (progress, RunRecordInCheckpoints(config.output_dir), stop):
        trainer.add_callback(callback)


def _start_run_record(config: TrainConfig, fingerprint: list[dict[str, Any]], echo: Echo) -> None:
    """--overwrite's removal of the earlier run, then this run's settings and data, before its first step."""
    if config.overwrite:
        removed = remove_earlier_run(config.output_dir)
        if removed:
            echo(f"--overwrite: removed the earlier run's {len(removed)} files and folders from {config.output_dir}")
    write_run_record(config.output_dir, config, fingerprint)


def _deepspeed_name(deepspeed: dict[str, Any] | str | None) -> str:
    if deepspeed is None:
        return ""
    return "DeepSpeed ZeRO-2, " if isinstance(deepspeed, dict) else f"DeepSpeed ({deepspeed}), "


def _device_map(config: TrainConfig, hardware: Hardware):
    # bitsandbytes quantizes while placing the weights, so QLoRA loads straight onto this process's device.
    if config.mode != "qlora":
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))} if hardware.cuda else {"": "cpu"}


def _print_on_main_process(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


class RunRecordInCheckpoints(TrainerCallback):
    """Copies the run's settings and data fingerprint into each checkpoint once it is saved completely."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            copy_run_record(self.output_dir, self.output_dir / f"checkpoint-{state.global_step}")
