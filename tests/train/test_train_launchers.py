"""Runs started by launchers, each in processes of their own: DeepSpeed ZeRO-2 and ZeRO-3, torchrun with two
processes, accelerate."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import TINY_MODEL, step_losses, train_config

from phi3v_data.errors import FileNotFoundPhi3vDataError
from phi3v_train.deepspeed import ZERO2_CONFIG, deepspeed_config, single_process_environment
from phi3v_train.trainer import run_training

from phi3v_train.hardware import Numerics
from phi3v_train.model import load_model

FP32_EAGER = Numerics("eager", "fp32")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_deepspeed_is_the_cookbooks_zero2_for_full_fine_tunes_unless_told_otherwise(tmp_path):
    assert deepspeed_config("auto", full_fine_tune=True) is ZERO2_CONFIG
    assert ZERO2_CONFIG["zero_optimization"]["stage"] == 2 and ZERO2_CONFIG["train_batch_size"] == "auto"
    assert deepspeed_config("auto", full_fine_tune=False) is None
    assert deepspeed_config("none", full_fine_tune=True) is None
    own = tmp_path / "zero3.json"
    own.write_text("{}")
    assert deepspeed_config(str(own), full_fine_tune=False) == str(own)
    with pytest.raises(FileNotFoundPhi3vDataError, match="no such file"):
        deepspeed_config(str(tmp_path / "missing.json"), full_fine_tune=True)


def test_a_run_without_a_launcher_gets_a_one_process_group(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    environment = single_process_environment()
    assert {key: environment[key] for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE")} == {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    assert int(environment["MASTER_PORT"]) > 0
    monkeypatch.setenv("RANK", "3")
    assert single_process_environment() == {}


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


ZERO3_CONFIG = {
    "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": True},
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto"},
    "train_micro_batch_size_per_gpu": "auto",
    "train_batch_size": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
}


@pytest.mark.slow
def test_full_fine_tune_trains_under_deepspeed_zero3_with_text_only_and_image_records(mixed_dataset, tmp_path):
    # ZeRO-3 gathers each module's weights as it runs: a text-only record must still run the vision tower.
    config_file = tmp_path / "zero3.json"
    config_file.write_text(json.dumps(ZERO3_CONFIG))
    out = tmp_path / "out"
    launcher = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    command = [
        sys.executable, "-m", "phi3v_train", "--data", str(mixed_dataset), "--model", str(TINY_MODEL), "--mode", "full",
        "--output-dir", str(out), "--num-crops", "1", "--batch-size", "1", "--max-steps", "4", "--warmup-steps", "0",
        "--learning-rate", "1e-3", "--logging-steps", "1", "--dataloader-workers", "0", "--deepspeed", str(config_file),
    ]
    run = subprocess.run(command, env={**os.environ, **launcher}, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert f"DeepSpeed ({config_file})" in run.stdout and "step 4/4 | loss" in run.stdout
    trained = dict(load_model(str(out), FP32_EAGER).named_parameters())
    original = dict(load_model(str(TINY_MODEL), FP32_EAGER).named_parameters())
    assert trained.keys() == original.keys()
    assert not torch.equal(trained["lm_head.weight"], original["lm_head.weight"])
    assert not torch.equal(trained["model.vision_embed_tokens.img_projection.0.weight"], original["model.vision_embed_tokens.img_projection.0.weight"])


def torchrun(*arguments: str) -> subprocess.CompletedProcess:
    torchrun_script = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun_script), "--nproc_per_node=2", f"--master_port={free_port()}", "-m", "phi3v_train", *arguments]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


@pytest.mark.slow
def test_two_processes_under_torchrun_train_like_one_process_with_accumulation(folder_dataset, tmp_path):
    # A global batch of 4 over the 4 training records: every step sees all of them, one process
    # with 4 accumulation steps or two processes with 2 each.
    settings = {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-2}
    alone = step_losses(run_training(train_config(tmp_path / "alone", [folder_dataset], **settings)).log_history)
    run = torchrun(
        "--data", str(folder_dataset), "--model", str(TINY_MODEL), "--mode", "lora", "--output-dir", str(tmp_path / "ddp"),
        "--num-crops", "1", "--batch-size", "4", "--micro-batch-size", "1", "--max-steps", "3", "--warmup-steps", "0",
        "--learning-rate", "1e-2", "--logging-steps", "1", "--lora-rank", "4", "--dataloader-workers", "0",
        "--deepspeed", "none",
    )
    assert "batch 4 = 1 x 2 process(es) x 2 accumulation step(s)" in run.stdout
    logged = [line for line in run.stdout.splitlines() if line.startswith("step ") and "| loss " in line]
    assert len(logged) == 3  # the main process logs, the other one does not
    for step, line in enumerate(logged, start=1):
        assert float(line.split("| loss ")[1].split(" |")[0]) == pytest.approx(alone[step], abs=1e-4)

    evaluation = torchrun("eval", "--model", str(tmp_path / "ddp"), "--data", str(folder_dataset), "--split", "train", "--max-new-tokens", "2")
    assert evaluation.stdout.count("train: exact match") == 1
    predictions = [json.loads(line) for line in (tmp_path / "ddp" / "predictions_train.jsonl").read_text().splitlines()]
    assert [prediction["id"] for prediction in predictions] == [
        json.loads(line)["id"] for line in (folder_dataset / "folder_train.jsonl").read_text().splitlines()
    ]


@pytest.mark.slow
def test_a_run_under_accelerate_launch_trains_and_saves(folder_dataset, tmp_path):
    # On a CPU accelerate starts one process (several need MPI); the launcher's environment must still work.
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(free_port()), "-m", "phi3v_train",
        "--data", str(folder_dataset), "--model", str(TINY_MODEL), "--mode", "lora", "--output-dir", str(tmp_path / "out"),
        "--num-crops", "1", "--batch-size", "2", "--micro-batch-size", "1", "--max-steps", "2", "--warmup-steps", "0",
        "--logging-steps", "1", "--lora-rank", "4", "--dataloader-workers", "0", "--deepspeed", "none",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "batch 2 = 1 x 1 process(es) x 2 accumulation step(s)" in run.stdout
    assert "step 2/2 | loss" in run.stdout
    assert (tmp_path / "out" / "adapter_config.json").is_file()
