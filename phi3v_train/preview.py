"""What ``--print-config`` says about the settings left unset: how they resolve, without loading the weights.

The printed YAML keeps them null, so the file loads back as the same settings on another machine or
dataset; the value each resolves to here (or when it is decided) is a comment on its line.
"""

from __future__ import annotations

from phi3v_data.errors import Phi3vDataError
from phi3v_data.manifest import require_validated
from phi3v_train.config import DEFAULT_WARMUP_STEPS, MAX_WARMUP_SHARE, TrainConfig
from phi3v_train.data import default_num_crops, train_records
from phi3v_train.hardware import Hardware, HardwareError, resolve_numerics


def unset_settings_notes(config: TrainConfig, hardware: Hardware) -> dict[str, str]:
    """By YAML key: what each unset (null) setting resolves to here, or when it is decided; and why an
    explicit attention kernel or precision would be refused on this machine."""
    notes = {}
    if config.epochs is None:
        notes["epochs"] = f"unused: --max-steps {config.max_steps} sets the length" if config.max_steps else "1"
    if config.num_crops is None:
        notes["num_crops"] = _num_crops_note(config)
    if config.warmup_steps is None:
        notes["warmup_steps"] = _warmup_note(config)
    return notes | _numerics_notes(config, hardware)


def _warmup_note(config: TrainConfig) -> str:
    if config.max_steps is None:  # the run's length in steps is known once the data is
        return f"{DEFAULT_WARMUP_STEPS}, or {MAX_WARMUP_SHARE:.0%} of the run if that is less"
    return str(config.warmup_for(config.max_steps)[0])


def _num_crops_note(config: TrainConfig) -> str:
    if config.validate_data:
        return "decided from the data once --validate has checked it"
    try:
        records = train_records(config, require_validated)
    except Phi3vDataError as error:
        return f"decided from the data when training starts ({error})"
    return f"{default_num_crops(records)} (chosen from the training records)"


def _numerics_notes(config: TrainConfig, hardware: Hardware) -> dict[str, str]:
    unset = [key for key in ("attn", "precision") if getattr(config, key) is None]
    refused = {}
    try:
        numerics = resolve_numerics(config.attn, config.precision, hardware)
    except HardwareError as error:  # only an explicit --attn or precision switch is refused
        refused = {key: f"refused on this machine: {error}" for key in ("attn", "precision") if key not in unset}
        numerics = resolve_numerics(None, None, hardware)  # what the unset ones would be without them
    resolved = {"attn": "; ".join([numerics.attn, *numerics.notes]), "precision": numerics.precision}
    return refused | {key: resolved[key] for key in unset}
