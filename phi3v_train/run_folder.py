"""What a run keeps in its ``--output-dir``, and the checks that keep one run from mixing with another.

A run writes its settings (``phi3v_train.yaml``, which ``--config`` loads) and the fingerprint of its
training data (``phi3v_train_data.json``: each training file's sha256) before its first step, and copies
both into every checkpoint once that checkpoint is saved completely. So:

- a folder holding them (at the top, or in a checkpoint) is a phi3v-train output; nothing else is;
- a run refuses a folder that holds anything unless ``--resume`` (continue that run) or ``--overwrite``
  (replace it); ``--overwrite`` removes only the files a run writes, and only from a phi3v-train output;
- ``--resume`` takes the newest checkpoint saved completely, and refuses one whose settings or data
  differ from this run's (naming each difference), or one that leaves nothing to train.

Light on purpose (no torch): the command line imports :class:`TrainingInterrupted` from here.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from phi3v_data.atomic import atomic_write_text
from phi3v_data.errors import FileNotFoundPhi3vDataError, Phi3vDataError, UsageError
from phi3v_data.manifest import Manifest
from phi3v_train.config import TrainConfig, load_yaml, resolve, to_yaml

RUN_CONFIG_NAME = "phi3v_train.yaml"
DATA_FINGERPRINT_NAME = "phi3v_train_data.json"
RUN_RECORD = (RUN_CONFIG_NAME, DATA_FINGERPRINT_NAME)
TRAINER_STATE_NAME = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# Everything a run (and `phi3v-train eval` with its default output) writes into --output-dir: the
# record, checkpoints, the model or adapter (transformers and PEFT, with PEFT's model card README.md),
# the processor, the Trainer's arguments, TensorBoard logs and predictions. --overwrite removes these.
RUN_OUTPUTS = (
    *RUN_RECORD, "checkpoint-*", "runs", "README.md", "training_args.bin",
    "config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
    "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
    "preprocessor_config.json", "processor_config.json", "chat_template.jinja", "chat_template.json",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
    "predictions_*.jsonl",
)
# Settings a resumed run may change: where and how often it reports and saves, how this machine computes
# (kernel, precision, recomputation, loader processes) and how the data is checked. The rest decide what
# is learned from which records in which order; the data itself is compared by its fingerprint.
FREE_TO_CHANGE_ON_RESUME = frozenset({
    "output_dir", "resume", "overwrite", "data", "validate_data", "eval_data", "eval_split", "eval_steps",
    "logging_steps", "save_steps", "save_total_limit", "report_to", "dataloader_workers", "attn", "precision",
    "activation_checkpointing",
})
# Settings that name files: compared as the files they name, wherever the run was started from.
PATH_SETTINGS = ("model", "lengths", "deepspeed")
_SHOWN_NAMES = 3


class TrainingInterrupted(Phi3vDataError):
    """A signal stopped the run; the message says what was saved and how to continue (exit status 3)."""


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a phi3v-train run's record, at its top or in a checkpoint."""
    return _is_record(folder) or any(_is_record(checkpoint) for checkpoint in checkpoints(folder))


def checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders in ``folder``, oldest first (links are not followed)."""
    if not folder.is_dir():
        return []
    found = [entry for entry in folder.iterdir() if _CHECKPOINT.fullmatch(entry.name) and _is_real_dir(entry)]
    return sorted(found, key=lambda entry: int(_CHECKPOINT.fullmatch(entry.name).group(1)))


def newest_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint holding the run record, which is copied in only after the save finished."""
    complete = [checkpoint for checkpoint in checkpoints(folder) if _is_record(checkpoint)]
    return complete[-1] if complete else None


def check_output_dir(config: TrainConfig) -> None:
    """Refuse an --output-dir this run must not write into; called before anything is read or written."""
    folder = config.output_dir
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output-dir {folder} is a file: name a folder")
    entries = sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []
    if not entries:
        return
    if Path(config.model).is_dir() and Path(config.model).resolve() == folder.resolve():
        raise UsageError(f"--output-dir {folder} is the --model folder: write the run to another folder")
    if not is_run_folder(folder):
        replaces_only = " (--overwrite replaces only an earlier phi3v-train run)" if config.overwrite else ""
        raise UsageError(
            f"--output-dir {folder} holds files phi3v-train did not write ({_some(entries)}): "
            f"choose an empty or new folder{replaces_only}"
        )
    if config.resume is None and not config.overwrite:
        raise UsageError(
            f"--output-dir {folder} holds an earlier phi3v-train run: continue it with --resume, replace it "
            "with --overwrite, or choose another folder"
        )


def remove_earlier_run(folder: Path) -> list[str]:
    """Remove what a run wrote into ``folder`` (a link itself, never what it points to); the names removed."""
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not any(fnmatch(entry.name, pattern) for pattern in RUN_OUTPUTS):
            continue
        if _is_real_dir(entry):
            shutil.rmtree(entry)  # removes links inside as links
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


def data_fingerprint(folders: list[tuple[Path, Manifest]], split: str) -> list[dict[str, Any]]:
    """Each training file as its manifest certified it (name, records, sha256), in --data order."""
    fingerprint = []
    for folder, manifest in folders:
        entry = manifest.splits[split]
        fingerprint.append(
            {"data": str(folder.absolute()), "file": entry.file, "records": entry.records, "sha256": entry.sha256}
        )
    return fingerprint


def write_run_record(folder: Path, config: TrainConfig, fingerprint: list[dict[str, Any]]) -> None:
    """This run's settings and data fingerprint, at the top of its output folder."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / DATA_FINGERPRINT_NAME, json.dumps({"train": fingerprint}, indent=2) + "\n")
    atomic_write_text(folder / RUN_CONFIG_NAME, run_settings_yaml(config))


def copy_run_record(output_dir: Path, checkpoint: Path) -> None:
    """Mark a saved checkpoint complete: the record goes in last, the settings file after the fingerprint."""
    for name in RUN_RECORD[::-1]:
        atomic_write_text(checkpoint / name, (output_dir / name).read_text(encoding="utf-8"))


def run_settings_yaml(config: TrainConfig) -> str:
    """The settings as phi3v_train.yaml records them.

    Local paths are absolute, so ``--config FILE --resume`` works from any folder; --resume and --overwrite
    are left out: they say what to do with the folder, not how to train.
    """
    update: dict[str, Any] = {
        "data": [folder.absolute() for folder in config.data],
        "output_dir": config.output_dir.absolute(),
        "eval_data": config.eval_data.absolute() if config.eval_data else None,
        "lengths": config.lengths.absolute() if config.lengths else None,
        "resume": None,
        "overwrite": False,
    }
    for setting in ("model", "deepspeed"):
        if Path(getattr(config, setting)).exists():
            update[setting] = str(Path(getattr(config, setting)).absolute())
    return to_yaml(config.model_copy(update=update))


def checkpoint_to_resume(config: TrainConfig, echo: Callable[[str], None]) -> Path | None:
    """The checkpoint --resume names (auto: the newest complete one in --output-dir), or None to start afresh."""
    if config.resume is None:
        return None
    if config.resume != "auto":
        return _named_checkpoint(Path(config.resume))
    found = checkpoints(config.output_dir)
    newest = newest_complete_checkpoint(config.output_dir)
    if newest is not None:
        for unfinished in found[found.index(newest) + 1 :]:
            echo(f"skipping {unfinished}: its save did not finish")
        return newest
    if found:
        raise UsageError(
            f"--resume: no checkpoint in {config.output_dir} was saved completely ({found[-1].name} has no "
            f"{RUN_CONFIG_NAME}): start over with --overwrite"
        )
    if any(entry.name not in (*RUN_RECORD, "runs") for entry in _entries(config.output_dir)):
        raise UsageError(
            f"--resume: {config.output_dir} holds a finished run and no checkpoint (it ran without --save-steps): "
            "replace it with --overwrite or choose another --output-dir"
        )
    echo(f"no checkpoint in {config.output_dir} yet: starting from the beginning")
    return None


def refuse_another_run(
    checkpoint: Path, config: TrainConfig, fingerprint: list[dict[str, Any]], total_steps: int
) -> None:
    """Refuse to resume ``checkpoint`` when its run had other settings or data, or has nothing left to train."""
    then = resolve(TrainConfig, load_yaml(checkpoint / RUN_CONFIG_NAME), {}, source=str(checkpoint / RUN_CONFIG_NAME))
    changed = setting_differences(then, config)
    if changed:
        raise UsageError(
            f"--resume {checkpoint}: its run had other settings ({'; '.join(changed)}); resume with them "
            f"(--config {checkpoint / RUN_CONFIG_NAME} --resume) or start a new run (--overwrite, or another "
            "--output-dir)"
        )
    changed = data_differences(_fingerprint_of(checkpoint), fingerprint)
    if changed:
        raise UsageError(
            f"--resume {checkpoint}: the training data changed since it was saved ({'; '.join(changed)}); "
            "resume on that data or start a new run (--overwrite, or another --output-dir)"
        )
    step = _checkpoint_step(checkpoint)
    if step >= total_steps:
        raise UsageError(
            f"--resume {checkpoint} is at step {step} of the run's {total_steps}: nothing is left to train "
            "(to train further, start a new run from the trained model)"
        )


def setting_differences(then: TrainConfig, now: TrainConfig) -> list[str]:
    """Each setting that changes the training, as ``--option THEN then, NOW now``."""
    before, after = then.model_dump(mode="json"), now.model_dump(mode="json")
    differences = []
    for name in type(now).model_fields:
        if name in FREE_TO_CHANGE_ON_RESUME:
            continue
        old, new = (_comparable(name, values[name]) for values in (before, after))
        if old != new:
            differences.append(f"--{name.replace('_', '-')} {_shown(before[name])} then, {_shown(after[name])} now")
    return differences


def data_differences(then: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[str]:
    """How the training files differ from the ones a checkpoint's run trained on."""
    if len(then) != len(now):
        return [f"{len(then)} --data folder(s) then, {len(now)} now"]
    differences = []
    for old, new in zip(then, now):
        if old["file"] != new["file"]:
            differences.append(f"{old['file']} then, {new['file']} now")
        elif old["sha256"] != new["sha256"]:
            hashes = f"sha256 {old['sha256'][:12]}… then, {new['sha256'][:12]}… now"
            differences.append(f"{Path(new['data']) / new['file']} changed ({hashes})")
    return differences


def interruption_message(
    signal_name: str, output_dir: Path, step: int | None = None, total_steps: int | None = None
) -> str:
    """What a stopped run tells the user: where it stopped, what was saved, and the command that continues."""
    where = f" after step {step} of {total_steps}" if step is not None else ""
    checkpoint = newest_complete_checkpoint(output_dir)
    if checkpoint is None:
        return f"interrupted by {signal_name}{where}; no checkpoint was saved, so nothing can resume: rerun the command"
    settings = output_dir / RUN_CONFIG_NAME if _is_record(output_dir) else checkpoint / RUN_CONFIG_NAME
    return (
        f"interrupted by {signal_name}{where}; {checkpoint} holds the run so far: continue it with "
        f"`phi3v-train --config {settings} --resume`"
    )


def _named_checkpoint(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundPhi3vDataError(f"--resume {path}: no such checkpoint folder")
    if not _is_record(path):
        raise UsageError(
            f"--resume {path} has no {RUN_CONFIG_NAME}: it is not a checkpoint that phi3v-train saved completely, "
            "so its settings cannot be checked against this run's"
        )
    return path


def _fingerprint_of(checkpoint: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((checkpoint / DATA_FINGERPRINT_NAME).read_text(encoding="utf-8"))["train"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"--resume {checkpoint}: its {DATA_FINGERPRINT_NAME} is missing or unreadable") from None


def _checkpoint_step(checkpoint: Path) -> int:
    """The optimizer steps a checkpoint has trained (its trainer state, else its folder's name)."""
    try:
        return int(json.loads((checkpoint / TRAINER_STATE_NAME).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        match = _CHECKPOINT.fullmatch(checkpoint.name)
        return int(match.group(1)) if match else 0


def _comparable(name: str, value: Any) -> Any:
    if name in PATH_SETTINGS and isinstance(value, str) and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_record(folder: Path) -> bool:
    record = folder / RUN_CONFIG_NAME
    return record.is_file() and not record.is_symlink()


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() else []


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    return shown + (f" and {len(names) - _SHOWN_NAMES} more" if len(names) > _SHOWN_NAMES else "")
