"""Full fine-tuning under DeepSpeed ZeRO-2 on the CPU, in a process of its own as a launcher would start it."""

import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import TINY_MODEL

from phi3v_train.hardware import Numerics
from phi3v_train.model import load_model

FP32_EAGER = Numerics("eager", "fp32")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_full_fine_tune_trains_under_deepspeed_zero2(folder_dataset, tmp_path):
    out = tmp_path / "out"
    launcher = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    command = [
        sys.executable, "-m", "phi3v_train", "--data", str(folder_dataset), "--model", str(TINY_MODEL), "--mode", "full",
        "--output-dir", str(out), "--num-crops", "1", "--batch-size", "2", "--micro-batch-size", "1", "--max-steps", "2",
        "--save-steps", "2", "--warmup-steps", "0", "--learning-rate", "1e-3", "--logging-steps", "1",
        "--dataloader-workers", "0",
    ]
    run = subprocess.run(command, env={**os.environ, **launcher}, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "full: 2,132,704 trainable parameters" in run.stdout and "DeepSpeed ZeRO-2" in run.stdout
    assert "batch 2 = 1 x 1 process(es) x 2 accumulation step(s)" in run.stdout
    assert "step 2/2 | loss" in run.stdout
    # DeepSpeed's own checkpoint layout: partitioned optimizer states under global_step<N>.
    assert list((out / "checkpoint-2" / "global_step2").glob("*optim_states.pt"))
    trained = dict(load_model(str(out), FP32_EAGER).named_parameters())
    original = dict(load_model(str(TINY_MODEL), FP32_EAGER).named_parameters())
    assert not torch.equal(trained["lm_head.weight"], original["lm_head.weight"])
