"""What ``--print-config`` says about the settings left unset: how they resolve, without loading the weights.

The printed YAML keeps them null, so the file loads back as the same settings on another machine or
dataset; the value each resolves to here (or when it is decided) is a comment on its line.
"""

from __future__ import annotations

from phi3v_data.errors import Phi3vDataError
from phi3v_data.manifest import require_validated
from phi3v_train.config import TrainConfig
from phi3v_train.data import default_num_crops, train_records
from phi3v_train.hardware import Hardware, HardwareError, resolve_numerics
from phi3v_train.model_files import model_default_attention

DECIDED_AT_LOAD = "decided when the model loads"


def unset_settings_notes(config: TrainConfig, hardware: Hardware) -> dict[str, str]:
    """By YAML key: what each unset (null) setting resolves to here, or when it is decided; and why an
    explicit attention kernel or precision would be refused on this machine."""
    notes = {}
    if config.epochs is None:
        notes["epochs"] = f"unused: --max-steps {config.max_steps} sets the length" if config.max_steps else "1"
    if config.num_crops is None:
        notes["num_crops"] = _num_crops_note(config)
    return notes | _numerics_notes(config, hardware)


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
    try:
        model_attn = model_default_attention(config.model)
        attn_known = True
    except Phi3vDataError:  # the model's preferred kernel is unknown until it loads; the precision is not
        model_attn, attn_known = None, config.attn is not None
    try:
        numerics = resolve_numerics(config.attn, config.precision, model_attn, hardware)
    except HardwareError as error:  # only an explicit --attn or precision switch is refused
        given = [key for key in ("attn", "precision") if key not in unset]
        return {key: f"refused on this machine: {error}" for key in given} | {key: DECIDED_AT_LOAD for key in unset}
    resolved = {
        "attn": "; ".join([numerics.attn, *numerics.notes]) if attn_known else DECIDED_AT_LOAD,
        "precision": numerics.precision,
    }
    return {key: resolved[key] for key in unset}
