"""What a user of ``phi3v-train`` sees: exit statuses, one-sentence refusals, --help, --print-config, quiet logs."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from train_fixtures import REPO_ROOT, TINY_MODEL

from phi3v_train import hardware
from phi3v_train.cli import DEBUG_ENV, main
from phi3v_train.config import TrainConfig
from phi3v_train.hardware import Hardware

REAL_MODEL_FILES = REPO_ROOT / "fixtures" / "phi35v"
A100 = Hardware(cuda=True, device_name="A100", capability=(8, 0), bf16=True, flash_attn_installed=True)
MISSING_4BIT_KERNEL = "gemm_4bit_forward"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def train_args(data, model, output_dir, *extra: str) -> list[str]:
    return ["--data", str(data), "--model", str(model), "--mode", "lora", "--output-dir", str(output_dir), *extra]


def help_text(*command: str) -> str:
    """--help on one line per option (click wraps at hyphens too, which no join could undo)."""
    result = CliRunner().invoke(main, [*command, "--help"], terminal_width=1000, max_content_width=1000)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("{tmp}/missing", "--model {tmp}/missing is neither a local folder nor a valid Hugging Face model id"),
        ("nobody/no-such-model", "with HF_HUB_OFFLINE=1 a Hugging Face model id must already be in the local cache"),
        ("{tmp}/file.txt", "--model {tmp}/file.txt is a file: point it at the model's folder"),
    ],
    ids=["path", "hub-id-offline", "file"],
)
def test_a_model_that_cannot_be_found_is_refused_saying_what_was_tried(folder_dataset, tmp_path, model, message):
    (tmp_path / "file.txt").write_text("not a model")
    result = run(*train_args(folder_dataset, model.format(tmp=tmp_path), tmp_path / "out"))
    assert result.exit_code == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.output and "Repo id must be" not in result.output


def test_errors_found_by_validate_exit_1_and_unvalidated_data_exits_2(mixed_dataset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(mixed_dataset, broken)
    (broken / "images" / "wide.jpg").write_bytes(b"not an image")
    found = run(*train_args(broken, TINY_MODEL, tmp_path / "out", "--validate"))
    assert found.exit_code == 1
    assert f"{broken} does not validate" in found.stderr and "wide.jpg" in found.stderr
    (broken / "manifest.json").unlink()
    refused = run(*train_args(broken, TINY_MODEL, tmp_path / "out"))
    assert refused.exit_code == 2 and "has no manifest.json: validate it first" in refused.stderr
    assert "Traceback" not in found.output + refused.output and not (tmp_path / "out").exists()


def test_an_unexpected_error_exits_2_in_one_line_unless_debugging(folder_dataset, tmp_path, monkeypatch):
    def broken_training(config):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore detail")

    monkeypatch.setattr("phi3v_train.trainer.run_training", broken_training)
    result = run(*train_args(folder_dataset, TINY_MODEL, tmp_path / "out"))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: internal error (RuntimeError: CUDA error: an illegal memory access was encountered); "
        f"rerun with {DEBUG_ENV}=1 for the traceback and please report it\n"
    )
    debugging = run(*train_args(folder_dataset, TINY_MODEL, tmp_path / "out"), env={DEBUG_ENV: "1"})
    assert isinstance(debugging.exception, RuntimeError)


@pytest.mark.parametrize("command", [[], ["train"], ["eval"]])
def test_help_documents_the_exit_statuses(command):
    shown = help_text(*command)
    assert "Exit status: 0 done; 1 --validate found errors in the data; 2 refused: bad options" in shown
    assert "an --output-dir holding another run" in shown
    assert "3 interrupted (Ctrl-C, SIGTERM): a run that had started training saved a checkpoint" in shown


def test_train_help_shows_the_defaults_the_settings_apply():
    shown_help = help_text("train")
    for shown in ("global batch size: micro-batches x processes x gradient-accumulation steps. [default: 16]",
                  "[default: 4e-05]", "[default: --activation-checkpointing]", "[default: --no-freeze-vision]",
                  f"[default: {TrainConfig.model_fields['dataloader_workers'].get_default(call_default_factory=True)}]"):
        assert shown in shown_help
    assert "--bf16 Train in bf16 mixed precision (the default on a GPU that supports it)." in shown_help


def test_eval_help_speaks_of_evaluation():
    shown_help = help_text("eval")
    assert "--bf16 Evaluate in bf16 mixed precision" in shown_help and "Train in" not in shown_help
    assert "--max-new-tokens INTEGER Stop each generated answer after this many tokens. [default: 64]" in shown_help


@pytest.mark.parametrize("command", [["train", "--data", "d", "--mode", "lora", "--output-dir", "o"], ["eval", "--data", "d"]])
def test_two_precision_switches_are_refused(command):
    result = run(*command, "--model", "m", "--bf16", "--fp16")
    assert result.exit_code == 2
    assert "--bf16 and --fp16 contradict each other: give one precision switch" in result.stderr


def printed_config(*args: str, machine: Hardware, monkeypatch) -> tuple[dict, dict[str, str]]:
    """--print-config's settings and the comment on each line, on a described machine."""
    monkeypatch.setattr(hardware.Hardware, "detect", classmethod(lambda cls: machine))
    result = run(*args, "--print-config")
    assert result.exit_code == 0, result.output
    comments = {}
    for line in result.output.splitlines():
        setting, _, comment = line.partition("  # ")
        if comment:
            comments[setting.split(":", 1)[0]] = comment
    return yaml.safe_load(result.output), comments


def test_print_config_says_what_unset_values_resolve_to(folder_dataset, mixed_dataset, tmp_path, monkeypatch):
    settings, notes = printed_config(*train_args(folder_dataset, REAL_MODEL_FILES, tmp_path), machine=A100, monkeypatch=monkeypatch)
    assert notes == {
        "attn": "flash_attention_2", "precision": "bf16", "num_crops": "16 (chosen from the training records)", "epochs": "1",
        "warmup_steps": "50, or 10% of the run if that is less",
    }
    assert (settings["attn"], settings["precision"], settings["num_crops"], settings["epochs"]) == (None, None, None, None)
    _, notes = printed_config(
        *train_args(mixed_dataset, REAL_MODEL_FILES, tmp_path, "--max-steps", "3"), machine=Hardware(cuda=False), monkeypatch=monkeypatch
    )
    assert notes["num_crops"] == "4 (chosen from the training records)"
    assert notes["epochs"] == "unused: --max-steps 3 sets the length" and notes["precision"] == "fp32"
    assert notes["attn"] == "sdpa" and notes["warmup_steps"] == "0"  # at most a tenth of the 3 steps


def test_print_config_says_what_it_cannot_resolve_yet(tmp_path, monkeypatch):
    _, notes = printed_config(*train_args(tmp_path / "none", "nobody/no-such-model", tmp_path, "--fp16"), machine=Hardware(cuda=False), monkeypatch=monkeypatch)
    assert notes["attn"] == "sdpa"
    assert notes["precision"] == "refused on this machine: --fp16 needs a GPU; on the CPU training runs in fp32 (drop --fp16)"
    assert notes["num_crops"] == (
        f"decided from the data when training starts ({tmp_path}/none has no manifest.json: validate it first with "
        f"`phi3v-data validate {tmp_path}/none --write-manifest`)"
    )


@pytest.mark.parametrize(("cores", "workers"), [({0}, 1), (set(range(2)), 2), (set(range(64)), 4)])
def test_loader_workers_default_to_at_most_the_cores_this_process_may_use(monkeypatch, cores, workers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cores, raising=False)
    assert TrainConfig(data=["d"], model="m", mode="lora", output_dir="o").dataloader_workers == workers


def train_in_a_new_process(mode: str, tmp_path) -> subprocess.CompletedProcess:
    # A new process, so bitsandbytes is imported (and logs) as in a user's run.
    arguments = ["--data", "d", "--model", str(tmp_path / "missing"), "--mode", mode, "--output-dir", "o"]
    return subprocess.run([sys.executable, "-m", "phi3v_train", *arguments], capture_output=True, text=True, check=False)


def test_a_lora_run_does_not_log_the_missing_4bit_kernel(tmp_path):
    result = train_in_a_new_process("lora", tmp_path)
    assert result.returncode == 2 and "is neither a local folder" in result.stderr
    assert MISSING_4BIT_KERNEL not in result.stderr


@pytest.mark.slow
def test_a_qlora_run_keeps_what_bitsandbytes_logs_about_its_4bit_kernel(tmp_path):
    bitsandbytes_alone = subprocess.run([sys.executable, "-c", "import bitsandbytes"], capture_output=True, text=True, check=True)
    result = train_in_a_new_process("qlora", tmp_path)
    assert (MISSING_4BIT_KERNEL in result.stderr) == (MISSING_4BIT_KERNEL in bitsandbytes_alone.stderr)


@pytest.mark.parametrize("command", ["train", "eval"])
def test_without_the_train_extra_the_trainer_says_what_to_install(folder_dataset, tmp_path, command) -> None:
    # A base install (`pip install phi3v-data`) has no torch: simulated in a fresh interpreter.
    arguments = [command, "--data", str(folder_dataset), "--model", str(tmp_path)]
    if command == "train":
        arguments += ["--mode", "lora", "--output-dir", str(tmp_path / "out")]
    script = f"import sys; sys.modules['torch'] = None\nfrom phi3v_train.cli import main\nmain({arguments!r})"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "Error: phi3v-train needs torch, which is not installed: pip install 'phi3v-data[train]'"


def test_help_loads_neither_the_validator_nor_the_model_libraries():
    # What --help loads, in a fresh interpreter: the CLI module must not pull in what only a run needs.
    heavy = ("phi3v_data.validation", "torch", "transformers", "peft", "bitsandbytes")
    script = f"import sys\nimport phi3v_train.cli\nprint(sorted(set({heavy!r}) & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
