"""The training recipe: validated data, the model in its mode, and the Hugging Face Trainer set up as the cookbook does.

Cookbook settings kept: AdamW (betas 0.9/0.95, eps 1e-7), linear schedule with warm-up, weight decay
0.01, gradient clipping at 1.0, non-reentrant activation checkpointing, DeepSpeed ZeRO-2 for full
fine-tunes, ``--batch-size`` reached with per-device micro-batches and gradient accumulation. Unlike
the cookbook, checkpoints keep the optimizer, scheduler, RNG and data position so ``--resume``
continues the same run, and logs go to stdout (other reporters are opt-in).
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from phi3v_data.errors import FileNotFoundPhi3vDataError, UsageError
from phi3v_data.manifest import Manifest
from phi3v_data.prompt import PromptBuilder
from phi3v_train.config import TrainConfig, to_yaml
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
from phi3v_train.model_files import model_files_dir
from phi3v_train.validated import open_dataset

RUN_CONFIG_NAME = "phi3v_train.yaml"
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
    notes = []
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
    return PreparedData(kept, kept_eval, num_crops, skipped, notes)


def training_arguments(
    config: TrainConfig,
    numerics: Numerics,
    hardware: Hardware,
    accumulation: int,
    find_unused: bool,
    deepspeed: dict[str, Any] | str | None,
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
        warmup_steps=config.warmup_steps,
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


def resume_checkpoint(config: TrainConfig, echo: Echo) -> str | None:
    """The checkpoint --resume names: ``auto`` finds the newest in the output folder."""
    if config.resume is None:
        return None
    if config.resume != "auto":
        if not Path(config.resume).is_dir():
            raise FileNotFoundPhi3vDataError(f"--resume {config.resume}: no such checkpoint folder")
        return config.resume
    last = get_last_checkpoint(str(config.output_dir)) if config.output_dir.is_dir() else None
    echo(f"resuming from {last}" if last else f"no checkpoint in {config.output_dir} yet: starting from the beginning")
    return last


def peak_memory_bytes(hardware: Hardware) -> int:
    """Peak GPU memory allocated, or the process's peak resident memory on the CPU."""
    if hardware.cuda:
        return torch.cuda.max_memory_allocated()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def run_training(config: TrainConfig, echo: Echo | None = None) -> TrainResult:
    """Train as ``config`` says and save the model (or adapter) and its processor to ``output_dir``."""
    echo = echo or _print_on_main_process
    builder = PromptBuilder.from_model_dir(model_files_dir(config.model))
    data = prepare_data(config, builder)  # refuses unvalidated data before anything slow
    hardware = Hardware.detect()
    numerics = resolve_numerics(config.attn, config.precision, hardware)
    for note in numerics.notes + data.notes:
        echo(note)
    processor = load_processor(config.model, data.num_crops)
    if processor.image_processor.num_crops != data.num_crops:
        raise UsageError(f"the processor of {config.model} ignored num_crops={data.num_crops}")
    accumulation = gradient_accumulation_steps(config.batch_size, config.micro_batch_size, world_size())
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

    has_text_only = any(not entry.record.images for entry in data.train)
    arguments = training_arguments(
        config, numerics, hardware, accumulation, needs_unused_parameter_search(config, has_text_only), deepspeed
    )
    lengths = record_lengths(config, data.train, builder, data.num_crops)
    trainer = Phi3VTrainer(
        model=model,
        args=arguments,
        record_lengths=lengths if config.group_by_length else None,
        data_collator=training_collator(config, Phi3VCollator.for_processor(builder, processor)),
        train_dataset=RecordDataset(data.train),
        eval_dataset=RecordDataset(data.eval) if data.eval else None,
        processing_class=processor,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StdoutLogger(echo))
    trainer.train(resume_from_checkpoint=resume_checkpoint(config, echo))
    if data.eval:
        trainer.evaluate()
    trainer.save_model(str(config.output_dir))
    if trainer.is_world_process_zero():
        (config.output_dir / RUN_CONFIG_NAME).write_text(to_yaml(config), encoding="utf-8")
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


class StdoutLogger(TrainerCallback):
    """One line per log event on the main process: step, loss, learning rate, gradient norm, evaluation loss."""

    def __init__(self, echo: Echo):
        self.echo = echo

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            values = " | ".join(f"{key} {_format(value)}" for key, value in logs.items())
            self.echo(f"step {state.global_step}/{state.max_steps} | {values}")


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
