"""Attention and precision choices on every kind of machine, from a described (not detected) one."""

from pathlib import Path

import pytest

from phi3v_train.hardware import Hardware, HardwareError, resolve_numerics
from phi3v_train.model_files import model_default_attention

REAL_MODEL_FILES = Path(__file__).resolve().parents[2] / "fixtures" / "phi35v"

CPU = Hardware(cuda=False)
A100 = Hardware(cuda=True, device_name="A100", capability=(8, 0), bf16=True, flash_attn_installed=True)
A100_WITHOUT_FLASH_ATTN = Hardware(cuda=True, device_name="A100", capability=(8, 0), bf16=True)
V100 = Hardware(cuda=True, device_name="V100", capability=(7, 0), bf16=False, flash_attn_installed=True)


def test_public_checkpoint_default_runs_flash_attention_in_bf16_where_it_can():
    assert model_default_attention(str(REAL_MODEL_FILES)) == "flash_attention_2"
    numerics = resolve_numerics(None, None, "flash_attention_2", A100)
    assert (numerics.attn, numerics.precision, numerics.notes) == ("flash_attention_2", "bf16", [])
    assert (numerics.load_dtype_name, numerics.compute_dtype_name) == ("bfloat16", "bfloat16")


@pytest.mark.parametrize(
    ("hardware", "reason", "compute_dtype"),
    [
        (CPU, "no", "float32"),
        (A100_WITHOUT_FLASH_ATTN, "not installed", "bfloat16"),
        (V100, "compute capability 7.0", "float16"),
    ],
)
def test_model_default_flash_attention_falls_back_to_eager_with_a_note(hardware, reason, compute_dtype):
    numerics = resolve_numerics(None, None, "flash_attention_2", hardware)
    assert numerics.attn == "eager"
    assert (numerics.load_dtype_name, numerics.compute_dtype_name) == ("float32", compute_dtype)
    assert len(numerics.notes) == 1 and reason in numerics.notes[0] and "eager" in numerics.notes[0]


@pytest.mark.parametrize("hardware", [CPU, A100_WITHOUT_FLASH_ATTN, V100])
def test_explicit_flash_attention_is_refused_where_it_cannot_run(hardware):
    with pytest.raises(HardwareError, match="--attn eager"):
        resolve_numerics("flash_attention_2", None, "flash_attention_2", hardware)


def test_fp16_with_flash_attention_is_refused_with_what_to_use():
    with pytest.raises(HardwareError, match="use --bf16, or --fp16 with --attn eager"):
        resolve_numerics("flash_attention_2", "fp16", None, A100)
    with pytest.raises(HardwareError, match="fp16 cannot be used with flash-attention"):
        resolve_numerics(None, "fp16", "flash_attention_2", A100)


def test_bf16_is_refused_on_a_gpu_without_it_and_fp16_is_the_default_there():
    with pytest.raises(HardwareError, match="V100 has no bf16 support; use --fp16"):
        resolve_numerics("eager", "bf16", None, V100)
    assert resolve_numerics("eager", None, None, V100).precision == "fp16"


def test_the_cpu_trains_in_fp32_and_refuses_half_precision():
    assert resolve_numerics(None, None, None, CPU) == resolve_numerics("eager", "fp32", None, CPU)
    assert resolve_numerics(None, None, None, CPU).precision == "fp32"
    for half in ("bf16", "fp16"):
        with pytest.raises(HardwareError, match=f"--{half} needs a GPU"):
            resolve_numerics("eager", half, None, CPU)


def test_requested_kernels_are_kept():
    assert resolve_numerics("sdpa", "bf16", "flash_attention_2", A100).attn == "sdpa"
    assert resolve_numerics("eager", None, "flash_attention_2", A100).precision == "bf16"
