"""The trainer's settings: one pydantic model, filled from defaults, then a YAML file, then the command line.

Every field is a ``phi3v-train`` option (``num_crops`` is ``--num-crops``) and a YAML key (either
spelling). Defaults are the Phi-3 cookbook's (``finetune_hf_trainer_*.py``): LoRA rank 64 with alpha
twice the rank and no dropout, learning rate 4e-5, weight decay 0.01, 50 warm-up steps, a global batch
of 16 reached with micro-batches of 1 and gradient accumulation.

The command line wins over the file, also where the two would contradict each other: a command-line
value for one of two exclusive settings (``--max-steps`` against the file's ``epochs``) clears the file's
other, and ``--OPTION null`` unsets an optional value the file sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from phi3v_data.cores import available_cores
from phi3v_data.errors import UsageError
from phi3v_data.hd_crop import MAX_NUM_CROPS

Mode = Literal["full", "frozen-vision", "lora", "qlora"]
Attention = Literal["eager", "sdpa", "flash_attention_2"]
Precision = Literal["bf16", "fp16", "fp32"]

ADAPTER_MODES = ("lora", "qlora")
MAX_DEFAULT_LOADER_WORKERS = 4
DEFAULT_WARMUP_STEPS = 50
# The cookbook's 50 warm-up steps are most of a short run: a warm-up left to the default takes at most
# this share of the run, and one as long as the run (it would never reach the learning rate) is cut to it.
MAX_WARMUP_SHARE = 0.1
# Pairs of settings of which one may be given: a command-line value for one clears the file's other.
EXCLUSIVE_SETTINGS = (("max_steps", "epochs"), ("resume", "overwrite"), ("predictions", "output_dir"))


class _Settings(BaseModel):
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, frozen=True, validate_by_name=True, validate_by_alias=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _one_item_as_list(cls, value: Any, info: Any) -> Any:
        # YAML users write `data: out/ucf101` for a single folder.
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, str) and getattr(annotation, "__origin__", None) is list:
            return [value]
        return value


class ModelSettings(_Settings):
    """What the trainer and ``eval`` share: how a model is loaded and which data it reads."""

    attn: Attention | None = None
    """Attention kernel; by default the model's own choice (flash_attention_2 for the public
    checkpoints), falling back to eager where flash-attn cannot run."""
    precision: Precision | None = None
    """bf16 or fp16 mixed precision on a GPU (default: bf16 where supported, else fp16); fp32 on the CPU."""
    validate_data: bool = Field(default=False, alias="validate")
    """Validate the data now instead of requiring a manifest.json that matches it."""
    max_length: int | None = Field(default=None, ge=1)
    """Skip (and count) records longer than this many tokens, image tokens included; never truncate."""


class TrainConfig(ModelSettings):
    """Everything ``phi3v-train`` needs to fine-tune Phi-3.5-vision or Phi-3-vision."""

    data: list[Path] = Field(min_length=1)
    """Dataset folders (made by phi3v-data convert, or validated with --write-manifest); repeatable."""
    model: str
    """A Hugging Face model id or a local folder (e.g. microsoft/Phi-3.5-vision-instruct)."""
    mode: Mode
    """full: every weight (DeepSpeed ZeRO-2); frozen-vision: full but the vision tower frozen;
    lora: LoRA adapters; qlora: LoRA on a 4-bit NF4 model."""
    output_dir: Path
    """Where checkpoints and the trained model (or adapter) and its processor are written."""
    eval_data: Path | None = None
    """A dataset folder whose loss is reported during and after training."""
    train_split: str = "train"
    """The split of each --data folder to train on."""
    eval_split: str | None = None
    """The split of --eval-data to evaluate (default: val, else test, else its only split)."""
    num_crops: int | None = Field(default=None, ge=1, le=MAX_NUM_CROPS)
    """Maximum 336-pixel crops per image, at most 16 (default: 4 when records hold several images, as the
    cookbook does for video frames, else 16)."""
    batch_size: int = Field(default=16, ge=1)
    """The global batch size: micro-batches x processes x gradient-accumulation steps."""
    micro_batch_size: int = Field(default=1, ge=1)
    """Records per process per forward pass."""
    max_steps: int | None = Field(default=None, ge=1)
    """Optimizer steps to train (instead of --epochs)."""
    epochs: float | None = Field(default=None, gt=0)
    """Passes over the data (default 1 unless --max-steps is given)."""
    learning_rate: float = Field(default=4.0e-5, gt=0)
    """The peak learning rate of AdamW (betas 0.9/0.95, eps 1e-7)."""
    weight_decay: float = Field(default=0.01, ge=0)
    """AdamW weight decay."""
    warmup_steps: int | None = Field(default=None, ge=0)
    """Steps of linear learning-rate warm-up before the linear decay (default: 50, the cookbook's, but at most
    10% of the run); a warm-up as long as the run is cut to 10% of it."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradients are clipped to this norm."""
    lora_rank: int = Field(default=64, ge=1)
    """LoRA rank r."""
    lora_alpha_ratio: float = Field(default=2.0, gt=0)
    """LoRA alpha divided by the rank."""
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout on the LoRA inputs."""
    freeze_vision: bool = False
    """LoRA modes: leave the vision tower and projection without adapters."""
    deepspeed: str = "auto"
    """auto (ZeRO-2 like the cookbook for full and frozen-vision, nothing for LoRA), none, or a config FILE."""
    activation_checkpointing: bool = True
    """Recompute activations in the backward pass (non-reentrant) to save memory."""
    save_steps: int | None = Field(default=None, ge=1)
    """Write a resumable checkpoint every N steps."""
    save_total_limit: int | None = Field(default=None, ge=1)
    """Keep only the newest N checkpoints."""
    resume: str | None = None
    """Continue from a checkpoint: auto (the newest in --output-dir) or its PATH; its run's settings and data
    must be this run's."""
    overwrite: bool = False
    """Replace an earlier phi3v-train run in --output-dir (removes only what a run writes there)."""
    eval_steps: int | None = Field(default=None, ge=1)
    """Report the --eval-data loss every N steps (it is always reported at the end)."""
    logging_steps: int = Field(default=10, ge=1)
    """Log the loss, learning rate and gradient norm every N steps."""
    report_to: list[str] = []
    """Extra reporters (tensorboard, wandb, ...); logs always go to stdout."""
    seed: int = 42
    """Seeds the LoRA initialisation, the data order and dropout."""
    # More loader processes than cores only contend for them (and the DataLoader warns).
    dataloader_workers: int = Field(default_factory=lambda: min(MAX_DEFAULT_LOADER_WORKERS, available_cores()), ge=0)
    """Processes that load images and build batches (default: 4, or fewer on a machine with fewer cores)."""
    packing: bool = False
    """Lay each micro-batch's records end to end instead of padding them (positions restart per record and
    attention stays inside each record; flash-attention's variable-length path on a GPU)."""
    max_tokens_per_batch: int | None = Field(default=None, ge=1)
    """With --packing: the longest row per process, in tokens; a micro-batch that does not fit one row takes
    several (default: one row). A longer record is refused, never cut."""
    group_by_length: bool = False
    """Batch records of similar token counts together (exact counts), in an order shuffled across batches
    and fixed by --seed."""
    lengths: Path | None = None
    """With --group-by-length: the token counts `phi3v-data validate --lengths FILE` wrote (default: counted
    from the image headers)."""

    @model_validator(mode="after")
    def _batching_options(self) -> TrainConfig:
        if self.max_tokens_per_batch is not None and not self.packing:
            raise ValueError("--max-tokens-per-batch sets the rows of --packing: add --packing")
        if self.lengths is not None and not self.group_by_length:
            raise ValueError("--lengths orders records for --group-by-length: add --group-by-length")
        return self

    @model_validator(mode="after")
    def _coherent(self) -> TrainConfig:
        if self.max_steps is not None and self.epochs is not None:
            raise ValueError("give --max-steps or --epochs, not both")
        if self.resume is not None and self.overwrite:
            raise ValueError("--resume continues the run in --output-dir and --overwrite replaces it: give one")
        if self.freeze_vision and self.mode not in ADAPTER_MODES:
            raise ValueError(
                f"--freeze-vision applies to the LoRA modes; for a full fine-tune with a frozen vision tower "
                f"use --mode frozen-vision (got --mode {self.mode})"
            )
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"--batch-size {self.batch_size} is not a multiple of --micro-batch-size {self.micro_batch_size}"
            )
        return self

    @property
    def uses_adapter(self) -> bool:
        return self.mode in ADAPTER_MODES

    @property
    def train_epochs(self) -> float:
        return self.epochs if self.epochs is not None else 1.0

    def warmup_for(self, total_steps: int) -> tuple[int, str | None]:
        """The warm-up steps of a run of ``total_steps`` optimizer steps, and a note when they are not the ones
        asked for."""
        longest = int(total_steps * MAX_WARMUP_SHARE)
        share = f"{MAX_WARMUP_SHARE:.0%} of the run's {total_steps} optimizer step(s)"
        if self.warmup_steps is None:
            if DEFAULT_WARMUP_STEPS <= longest:
                return DEFAULT_WARMUP_STEPS, None
            return longest, f"warm-up: {longest} step(s), {share} (the default {DEFAULT_WARMUP_STEPS} would outlast it)"
        if self.warmup_steps < total_steps:
            return self.warmup_steps, None
        return longest, (
            f"--warmup-steps {self.warmup_steps} would last the whole run: warming up for {longest} step(s), {share}"
        )


class EvalConfig(ModelSettings):
    """Everything ``phi3v-train eval`` needs to score a trained model's answers."""

    model: Path
    """A training run's --output-dir (full model or adapter, with its processor), or another model's folder or
    Hugging Face id."""
    data: Path
    """A dataset folder (validated) to generate answers for."""
    split: str | None = None
    """The split to evaluate (default: val, else test, else its only split)."""
    base_model: str | None = None
    """For an adapter: the base model to load (default: the one recorded in adapter_config.json)."""
    max_new_tokens: int = Field(default=64, ge=1)
    """Stop each generated answer after this many tokens."""
    batch_size: int = Field(default=8, ge=1)
    """Records generated together per process (left-padded, with the KV cache)."""
    output_dir: Path | None = None
    """The folder predictions_<split>.jsonl goes to (default: --model's folder when phi3v-train trained it,
    else MODEL-eval beside it, or ./NAME-eval for a Hugging Face model id)."""
    predictions: Path | None = None
    """The predictions file itself, one JSON line per record (instead of --output-dir)."""
    limit: int | None = Field(default=None, ge=1)
    """Evaluate only the first N records."""

    @model_validator(mode="after")
    def _one_destination(self) -> EvalConfig:
        if self.output_dir is not None and self.predictions is not None:
            raise ValueError("--predictions names the file and --output-dir its folder: give one")
        return self


def load_yaml(path: Path) -> dict[str, Any]:
    """The settings in a YAML file, keys in either spelling (``num-crops`` or ``num_crops``)."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read the config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {error}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise UsageError(f"{path} must hold a mapping of option names to values, not a {type(content).__name__}")
    return {str(key).replace("-", "_"): value for key, value in content.items()}


def resolve(settings: type[_Settings], file_values: dict[str, Any], cli_values: dict[str, Any], source: str = ""):
    """The settings from a config file overridden by the command line, or a UsageError saying what is wrong.

    A command-line value of None unsets the setting (``--epochs null``).
    """
    file_values = _by_field_name(settings, file_values)
    overridden = set(cli_values) | overridden_by_command_line(settings, cli_values)
    kept = {key: value for key, value in file_values.items() if key not in overridden}
    given = {key: value for key, value in cli_values.items() if value is not None}
    try:
        return settings.model_validate(kept | given)
    except ValidationError as error:
        raise UsageError(describe_errors(error, source)) from None


def overridden_by_command_line(settings: type[_Settings], cli_values: dict[str, Any]) -> set[str]:
    """The file's settings that command-line values override besides their own: the other of an exclusive
    pair, and settings that only apply with an option the command line switches off."""
    given = {key for key, value in cli_values.items() if value is not None and value is not False}
    cleared = {
        other
        for pair in EXCLUSIVE_SETTINGS
        if set(pair) <= settings.model_fields.keys()
        for key, other in (pair, pair[::-1])
        if key in given
    }
    if cli_values.get("packing") is False:
        cleared.add("max_tokens_per_batch")
    if cli_values.get("group_by_length") is False:
        cleared.add("lengths")
    if "mode" in given and cli_values["mode"] not in ADAPTER_MODES:
        cleared.add("freeze_vision")
    return cleared


def _by_field_name(settings: type[_Settings], values: dict[str, Any]) -> dict[str, Any]:
    # A file may spell a setting by its alias (`validate`); the command line passes the field's name.
    names = {field.alias: name for name, field in settings.model_fields.items() if field.alias}
    return {names.get(key, key): value for key, value in values.items()}


def describe_errors(error: ValidationError, source: str = "") -> str:
    """One line per problem, naming the option as the user writes it."""
    lines = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"])
        option = f"--{location.replace('_', '-')}" if location else "the configuration"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required"
        elif problem["type"] == "extra_forbidden":
            message = f"is not an option{f' (in {source})' if source else ''}"
        lines.append(f"{option} {message}" if location else message)
    return "; ".join(lines)


def to_yaml(config: BaseModel, notes: dict[str, str] | None = None) -> str:
    """The resolved settings as YAML (required ones first), loadable again with --config.

    ``notes`` (by YAML key) become comments after their setting's line, so the file still loads as it is.
    """
    values = config.model_dump(mode="json", by_alias=True)
    fields = type(config).model_fields
    required = [(field.alias or name) for name, field in fields.items() if field.is_required()]
    ordered = {key: values[key] for key in required} | values
    notes = notes or {}
    lines = []
    for line in yaml.safe_dump(ordered, sort_keys=False).splitlines():
        key = line.split(":", 1)[0]  # a top-level line starts with its key; list items with "- "
        lines.append(f"{line}  # {' '.join(notes[key].split())}" if key in notes else line)
    return "".join(line + "\n" for line in lines)
