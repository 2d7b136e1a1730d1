"""The DeepSpeed configuration of full fine-tunes: the cookbook's ZeRO-2 settings.

``"auto"`` values are filled in by the Hugging Face Trainer from its own arguments (micro-batch,
accumulation, clipping, fp16/bf16), so the file never disagrees with the command line.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from phi3v_data.errors import FileNotFoundPhi3vDataError

# As in the cookbook's finetune_hf_trainer_*.py (DS_CONFIG_DICT).
ZERO2_CONFIG: dict[str, Any] = {
    "zero_optimization": {
        "stage": 2,
        "allgather_partitions": True,
        "allgather_bucket_size": 5e8,
        "overlap_comm": True,
        "reduce_scatter": True,
        "reduce_bucket_size": 5e8,
        "contiguous_gradients": True,
        "round_robin_gradients": True,
    },
    "fp16": {
        "enabled": "auto",
        "loss_scale": 0,
        "loss_scale_window": 1000,
        "initial_scale_power": 16,
        "hysteresis": 2,
        "min_loss_scale": 1,
    },
    "bf16": {"enabled": "auto"},
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
}

_LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def deepspeed_config(setting: str, full_fine_tune: bool) -> dict[str, Any] | str | None:
    """The config to give the Trainer: ``auto`` (ZeRO-2 for full fine-tunes), ``none``, or a file's path."""
    if setting == "none":
        return None
    if setting == "auto":
        return ZERO2_CONFIG if full_fine_tune else None
    path = Path(setting)
    if not path.is_file():
        raise FileNotFoundPhi3vDataError(f"--deepspeed {setting}: no such file (or use auto or none)")
    return str(path)


def single_process_environment() -> dict[str, str]:
    """Launcher variables for a run started without a launcher: one process, a free local port.

    DeepSpeed always joins a process group; torchrun, accelerate and deepspeed set these themselves.
    """
    if "RANK" in os.environ:
        return {}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return {name: defaults[name] for name in _LAUNCHER_VARIABLES if name not in os.environ}
