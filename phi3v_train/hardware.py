"""Which attention kernel and precision a run uses, decided from what the machine can do.

The rules follow the cookbook and the hardware: flash-attention 2 needs an Ampere-or-newer NVIDIA GPU
(compute capability 8.0) and the ``flash-attn`` package, and the cookbook runs it with the model in
bf16, so fp16 is refused with it. The default is flash-attention where it can run and PyTorch's sdpa
elsewhere (with a note on a GPU that cannot run flash-attention); an explicit
``--attn flash_attention_2`` that cannot run is refused with the reason. On the CPU everything runs in fp32.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from phi3v_data.errors import UsageError

FLASH_ATTENTION = "flash_attention_2"
FLASH_MIN_CAPABILITY = (8, 0)
_TORCH_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class HardwareError(UsageError):
    """The requested precision or attention kernel cannot run on this machine."""


@dataclass(frozen=True, slots=True)
class Hardware:
    """What the training device supports."""

    cuda: bool
    device_name: str = "CPU"
    capability: tuple[int, int] = (0, 0)
    bf16: bool = False
    flash_attn_installed: bool = False

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        flash_installed = importlib.util.find_spec("flash_attn") is not None
        if not torch.cuda.is_available():
            return cls(cuda=False, flash_attn_installed=flash_installed)
        return cls(
            cuda=True,
            device_name=torch.cuda.get_device_name(),
            capability=torch.cuda.get_device_capability(),
            bf16=torch.cuda.is_bf16_supported(),
            flash_attn_installed=flash_installed,
        )


@dataclass(frozen=True, slots=True)
class Numerics:
    """The attention kernel and precision a run uses, with notes on any fallback."""

    attn: str
    precision: str
    notes: list[str] = field(default_factory=list)

    @property
    def load_dtype_name(self) -> str:
        """The dtype to load weights in: bf16 with flash-attention (as the cookbook), else fp32 master weights."""
        return "bfloat16" if self.attn == FLASH_ATTENTION else "float32"

    @property
    def compute_dtype_name(self) -> str:
        """The dtype mixed precision computes in (and QLoRA's 4-bit matmuls): the precision's torch name."""
        return _TORCH_DTYPE_NAMES[self.precision]


def flash_attention_obstacle(hardware: Hardware) -> str | None:
    """Why flash-attention 2 cannot run here, or None when it can."""
    if not hardware.cuda:
        return "flash-attention needs an NVIDIA GPU and this machine has none"
    if hardware.capability < FLASH_MIN_CAPABILITY:
        major, minor = hardware.capability
        return (
            f"the {hardware.device_name} (compute capability {major}.{minor}) lacks flash-attention 2, "
            "which needs an Ampere or newer GPU (8.0)"
        )
    if not hardware.flash_attn_installed:
        return "the flash-attn package is not installed (pip install 'phi3v-data[flash]')"
    return None


def resolve_numerics(attn: str | None, precision: str | None, hardware: Hardware) -> Numerics:
    """The attention kernel and precision to use, or a HardwareError saying why and what to use instead."""
    notes: list[str] = []
    obstacle = flash_attention_obstacle(hardware)
    if attn == FLASH_ATTENTION and obstacle:
        raise HardwareError(f"--attn {FLASH_ATTENTION} cannot run: {obstacle}; use --attn sdpa")
    if attn is None:
        # The cookbook runs flash-attention in bf16 only, so asking for fp16 picks sdpa.
        attn = "sdpa" if obstacle or precision == "fp16" else FLASH_ATTENTION
        if obstacle and hardware.cuda:
            notes.append(f"{FLASH_ATTENTION} cannot run ({obstacle}): using sdpa attention")
    return Numerics(attn, _precision(precision, attn, hardware), notes)


def _precision(requested: str | None, attn: str, hardware: Hardware) -> str:
    if not hardware.cuda:
        if requested in ("bf16", "fp16"):
            raise HardwareError(f"--{requested} needs a GPU; on the CPU training runs in fp32 (drop --{requested})")
        return "fp32"
    if requested == "fp16" and attn == FLASH_ATTENTION:
        raise HardwareError(
            "fp16 cannot be used with flash-attention, which runs Phi-3-V in bf16 as the cookbook does; "
            "use --bf16, or --fp16 with --attn sdpa"
        )
    if requested == "bf16" and not hardware.bf16:
        raise HardwareError(f"the {hardware.device_name} has no bf16 support; use --fp16 with --attn sdpa")
    if requested is None:
        return "bf16" if hardware.bf16 else "fp16"
    return requested
