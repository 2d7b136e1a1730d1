"""Attention and precision choices on every kind of machine, from a described (not detected) one."""

import pytest

from phi3v_train.hardware import Hardware, HardwareError, resolve_numerics

CPU = Hardware(cuda=False)
A100 = Hardware(cuda=True, device_name="A100", capability=(8, 0), bf16=True, flash_attn_installed=True)
A100_WITHOUT_FLASH_ATTN = Hardware(cuda=True, device_name="A100", capability=(8, 0), bf16=True)
V100 = Hardware(cuda=True, device_name="V100", capability=(7, 0), bf16=False, flash_attn_installed=True)


def test_the_default_runs_flash_attention_in_bf16_where_it_can():
    numerics = resolve_numerics(None, None, A100)
    assert (numerics.attn, numerics.precision, numerics.notes) == ("flash_attention_2", "bf16", [])
    assert (numerics.load_dtype_name, numerics.compute_dtype_name) == ("bfloat16", "bfloat16")


@pytest.mark.parametrize(
    ("hardware", "reason", "compute_dtype"),
    [(A100_WITHOUT_FLASH_ATTN, "not installed", "bfloat16"), (V100, "compute capability 7.0", "float16")],
)
def test_a_gpu_without_flash_attention_falls_back_to_sdpa_with_a_note(hardware, reason, compute_dtype):
    numerics = resolve_numerics(None, None, hardware)
    assert numerics.attn == "sdpa"
    assert (numerics.load_dtype_name, numerics.compute_dtype_name) == ("float32", compute_dtype)
    assert len(numerics.notes) == 1 and reason in numerics.notes[0] and "sdpa" in numerics.notes[0]


def test_the_cpu_uses_sdpa_without_a_note():
    numerics = resolve_numerics(None, None, CPU)
    assert (numerics.attn, numerics.precision, numerics.notes) == ("sdpa", "fp32", [])


@pytest.mark.parametrize("hardware", [CPU, A100_WITHOUT_FLASH_ATTN, V100])
def test_explicit_flash_attention_is_refused_where_it_cannot_run(hardware):
    with pytest.raises(HardwareError, match="--attn sdpa"):
        resolve_numerics("flash_attention_2", None, hardware)


def test_fp16_picks_sdpa_and_is_refused_with_explicit_flash_attention():
    with pytest.raises(HardwareError, match="use --bf16, or --fp16 with --attn sdpa"):
        resolve_numerics("flash_attention_2", "fp16", A100)
    assert resolve_numerics(None, "fp16", A100).attn == "sdpa"


def test_bf16_is_refused_on_a_gpu_without_it_and_fp16_is_the_default_there():
    with pytest.raises(HardwareError, match="V100 has no bf16 support; use --fp16"):
        resolve_numerics("eager", "bf16", V100)
    assert resolve_numerics("eager", None, V100).precision == "fp16"


def test_the_cpu_trains_in_fp32_and_refuses_half_precision():
    assert resolve_numerics(None, None, CPU) == resolve_numerics("sdpa", "fp32", CPU)
    for half in ("bf16", "fp16"):
        with pytest.raises(HardwareError, match=f"--{half} needs a GPU"):
            resolve_numerics("eager", half, CPU)


def test_requested_kernels_are_kept():
    assert resolve_numerics("sdpa", "bf16", A100).attn == "sdpa"
    assert resolve_numerics("eager", None, A100).precision == "bf16"
