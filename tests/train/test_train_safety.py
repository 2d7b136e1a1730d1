"""Runs that cannot go quietly wrong: output folders, --resume's checks, the warm-up, signals, progress, model folders."""

import fcntl
import io
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from train_fixtures import REPO_ROOT, TINY_MODEL

from phi3v_data.validation import validate
from phi3v_data.validation.manifest import write_validated_manifest
from phi3v_train.cli import main
from phi3v_train.config import TrainConfig
from phi3v_train.evaluate import predictions_folder
from phi3v_train.progress import RecordProgress, TrainingProgress
from phi3v_train.run_folder import RUN_CONFIG_NAME
from phi3v_train.trainer import optimizer_steps

TOKENIZER_ONLY = REPO_ROOT / "fixtures" / "phi35v"
# A few steps on the tiny model, as the other trainer tests run.
TINY_RUN = [
    "--model", str(TINY_MODEL), "--mode", "lora", "--num-crops", "1", "--batch-size", "1", "--lora-rank", "4",
    "--dataloader-workers", "0", "--deepspeed", "none", "--logging-steps", "1", "--learning-rate", "1e-3",
]
LIBRARY_NOISE = ("Loading weights", "Writing model shards", "FutureWarning", "[transformers]", "Setting accelerator to CPU")


def train(data: Path, output_dir: Path, *extra: str):
    return CliRunner().invoke(main, ["--data", str(data), "--output-dir", str(output_dir), *TINY_RUN, *extra])


def run_in_a_terminal(command: list[str]) -> tuple[int, str]:
    """Run ``command`` with a 160-column terminal as its stdout and stderr; its exit status and all it wrote."""
    terminal, child_end = os.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    child = subprocess.Popen(command, stdout=child_end, stderr=child_end)
    os.close(child_end)
    written = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the child closed the terminal (Linux reports EIO)
            break
        if not chunk:
            break
        written += chunk
    os.close(terminal)
    return child.wait(timeout=600), written.decode()


@pytest.fixture(scope="module")
def finished_run(folder_dataset, tmp_path_factory) -> Path:
    """A run of 4 steps with checkpoints at steps 2 and 4 (the warm-up left to its default)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    result = train(folder_dataset, out, "--max-steps", "4", "--save-steps", "2")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def earlier_run(finished_run, tmp_path) -> Path:
    """A copy of the finished run to change."""
    return Path(shutil.copytree(finished_run, tmp_path / "out", symlinks=True))


@pytest.mark.slow
def test_a_run_writes_its_settings_and_data_when_it_starts_and_into_each_checkpoint(finished_run, folder_dataset):
    for folder in (finished_run, finished_run / "checkpoint-2", finished_run / "checkpoint-4"):
        settings = TrainConfig.model_validate(yaml.safe_load((folder / RUN_CONFIG_NAME).read_text()))
        assert settings.output_dir == finished_run.absolute() and settings.data == [folder_dataset.absolute()]
        fingerprint = json.loads((folder / "phi3v_train_data.json").read_text())["train"]
        assert [(entry["file"], entry["records"]) for entry in fingerprint] == [("folder_train.jsonl", 4)]


@pytest.mark.slow
def test_a_folder_holding_another_run_is_refused_without_resume_or_overwrite(earlier_run, folder_dataset):
    before = (earlier_run / "checkpoint-4" / "trainer_state.json").read_bytes()
    result = train(folder_dataset, earlier_run, "--max-steps", "2")
    assert result.exit_code == 2
    assert (
        f"--output-dir {earlier_run} holds an earlier phi3v-train run: continue it with --resume, replace it with "
        "--overwrite, or choose another folder"
    ) in result.stderr
    assert (earlier_run / "checkpoint-4" / "trainer_state.json").read_bytes() == before


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_other_settings_naming_each(earlier_run, folder_dataset):
    result = train(folder_dataset, earlier_run, "--max-steps", "2", "--lora-rank", "8", "--resume")
    assert result.exit_code == 2
    assert (
        f"--resume {earlier_run / 'checkpoint-4'}: its run had other settings (--max-steps 4 then, 2 now; "
        f"--lora-rank 4 then, 8 now); resume with them (--config {earlier_run / 'checkpoint-4' / RUN_CONFIG_NAME} --resume)"
    ) in result.stderr
    assert "internal error" not in result.output


@pytest.mark.slow
def test_resume_refuses_a_run_with_nothing_left_to_train(earlier_run, folder_dataset, tmp_path):
    # The data moved to another folder (the same files) and the loader and reporting changed: all allowed.
    moved = Path(shutil.copytree(folder_dataset, tmp_path / "moved"))
    result = train(moved, earlier_run, "--max-steps", "4", "--save-steps", "3", "--logging-steps", "2", "--resume")
    assert result.exit_code == 2
    assert f"--resume {earlier_run / 'checkpoint-4'} is at step 4 of the run's 4: nothing is left to train" in result.stderr


@pytest.mark.slow
def test_resume_refuses_changed_training_data(earlier_run, folder_dataset, tmp_path):
    changed = Path(shutil.copytree(folder_dataset, tmp_path / "changed"))
    records = (changed / "folder_train.jsonl").read_text().splitlines()
    (changed / "folder_train.jsonl").write_text("\n".join(records[::-1]) + "\n")  # the same records, another order
    write_validated_manifest(changed, validate([changed], workers=1))
    result = train(changed, earlier_run, "--max-steps", "4", "--save-steps", "2", "--resume")
    assert result.exit_code == 2
    assert f"the training data changed since it was saved ({changed / 'folder_train.jsonl'} changed (sha256 " in result.stderr


@pytest.mark.slow
def test_resume_skips_an_unfinished_checkpoint_and_continues_the_run(earlier_run, folder_dataset):
    shutil.rmtree(earlier_run / "checkpoint-4")
    (earlier_run / "checkpoint-3").mkdir()  # killed while saving: the run record never went in
    (earlier_run / "checkpoint-3" / "adapter_model.safetensors").write_bytes(b"half")
    result = train(folder_dataset, earlier_run, "--max-steps", "4", "--save-steps", "2", "--dataloader-workers", "1", "--resume")
    assert result.exit_code == 0, result.output
    assert f"skipping {earlier_run / 'checkpoint-3'}: its save did not finish" in result.output
    assert f"resuming from {earlier_run / 'checkpoint-2'}" in result.output
    assert [line.split(" |")[0] for line in result.output.splitlines() if "| loss " in line] == ["step 3/4", "step 4/4"]


@pytest.mark.slow
def test_overwrite_removes_only_what_the_earlier_run_wrote_and_never_follows_links(earlier_run, folder_dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the run's")
    (earlier_run / "checkpoint-9").symlink_to(elsewhere, target_is_directory=True)
    (earlier_run / "notes.txt").write_text("the user's")
    result = train(folder_dataset, earlier_run, "--max-steps", "1", "--overwrite")
    assert result.exit_code == 0, result.output
    assert "--overwrite: removed the earlier run's" in result.output
    assert not (earlier_run / "checkpoint-2").exists() and not (earlier_run / "checkpoint-9").is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "not the run's" and (earlier_run / "notes.txt").read_text() == "the user's"
    assert [line.split(" |")[0] for line in result.output.splitlines() if "| loss " in line] == ["step 1/1"]


@pytest.mark.parametrize("flags", [[], ["--overwrite"], ["--resume"]], ids=["plain", "overwrite", "resume"])
def test_a_folder_phi3v_train_did_not_write_is_never_written_into(folder_dataset, tmp_path, flags):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.safetensors").write_text("someone else's model")
    result = train(folder_dataset, tmp_path / "out", "--max-steps", "1", *flags)
    assert result.exit_code == 2
    assert f"--output-dir {tmp_path / 'out'} holds files phi3v-train did not write (model.safetensors): choose an empty or new folder" in result.stderr
    assert (tmp_path / "out" / "model.safetensors").read_text() == "someone else's model"
    assert sorted(os.listdir(tmp_path / "out")) == ["model.safetensors"]


def test_an_output_dir_that_is_a_file_or_the_model_folder_is_refused(folder_dataset, tmp_path):
    (tmp_path / "file").write_text("")
    assert "--output-dir " + str(tmp_path / "file") + " is a file: name a folder" in train(folder_dataset, tmp_path / "file").stderr
    model = Path(shutil.copytree(TINY_MODEL, tmp_path / "model"))
    result = CliRunner().invoke(main, ["--data", str(folder_dataset), "--output-dir", str(model), *TINY_RUN, "--model", str(model)])
    assert result.exit_code == 2 and f"--output-dir {model} is the --model folder" in result.stderr


@pytest.mark.slow
def test_resume_refuses_a_finished_run_without_checkpoints(finished_run, folder_dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in (RUN_CONFIG_NAME, "phi3v_train_data.json", "adapter_model.safetensors"):
        shutil.copy(finished_run / name, out / name)
    result = train(folder_dataset, out, "--max-steps", "4", "--save-steps", "2", "--resume")
    assert result.exit_code == 2
    assert f"--resume: {out} holds a finished run and no checkpoint (it ran without --save-steps)" in result.stderr


@pytest.mark.slow
def test_the_default_warm_up_is_at_most_a_tenth_of_the_run(finished_run, folder_dataset, tmp_path):
    config = TrainConfig(data=["d"], model="m", mode="lora", output_dir="o")
    assert config.warmup_for(3) == (0, "warm-up: 0 step(s), 10% of the run's 3 optimizer step(s) (the default 50 would outlast it)")
    assert config.warmup_for(1000) == (50, None)
    explicit = config.model_copy(update={"warmup_steps": 30})
    assert explicit.warmup_for(100) == (30, None)
    assert explicit.warmup_for(30)[0] == 3 and "--warmup-steps 30 would last the whole run" in explicit.warmup_for(30)[1]
    # The finished run (4 steps, default warm-up) trained at its peak rate from the first step, then decayed.
    logged = json.loads((finished_run / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    rates = [entry["learning_rate"] for entry in logged if "learning_rate" in entry]
    assert rates[0] == pytest.approx(1e-3) and rates == sorted(rates, reverse=True) and len(set(rates)) == 4


@pytest.mark.slow
def test_the_length_of_a_run_in_epochs_is_counted_as_the_trainer_counts_it(folder_dataset, tmp_path):
    epochs = TrainConfig(data=["d"], model="m", mode="lora", output_dir="o", epochs=1.5, batch_size=2)
    assert optimizer_steps(epochs, records=4, processes=1, accumulation=2) == 3
    assert optimizer_steps(epochs, records=5, processes=2, accumulation=1) == 5  # 3 batches per process
    result = train(folder_dataset, tmp_path / "out", "--epochs", "1.5", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "warm-up: 0 step(s), 10% of the run's 3 optimizer step(s)" in result.output
    assert "step 3/3 | loss" in result.output


@pytest.mark.slow
def test_eval_writes_beside_a_model_it_did_not_train(folder_dataset, tmp_path):
    model = Path(shutil.copytree(TINY_MODEL, tmp_path / "tiny"))
    files = sorted(os.listdir(model))
    result = CliRunner().invoke(
        main, ["eval", "--model", str(model), "--data", str(folder_dataset), "--max-new-tokens", "1", "--batch-size", "1"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(model)) == files
    assert f"predictions in {tmp_path / 'tiny-eval' / 'predictions_val.jsonl'}" in result.output
    assert len((tmp_path / "tiny-eval" / "predictions_val.jsonl").read_text().splitlines()) == 2
    assert "generating: 1/2 records" in result.output and "generating: 2/2 records" in result.output


@pytest.mark.slow
def test_predictions_go_to_the_folder_the_model_and_options_call_for(finished_run, tmp_path):
    def folder(**settings):
        return predictions_folder(SimpleNamespace(output_dir=None, **settings))

    assert folder(model=finished_run) == finished_run  # a phi3v-train output
    assert folder(model=TINY_MODEL) == TINY_MODEL.parent / "tiny-phi3v-eval"
    assert folder(model=Path("microsoft/Phi-3.5-vision-instruct")) == Path("Phi-3.5-vision-instruct-eval")
    assert predictions_folder(SimpleNamespace(output_dir=tmp_path, model=finished_run)) == tmp_path


@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_tokenizer_only_folder_as_model_is_explained_in_one_line(folder_dataset, tmp_path, command):
    arguments = [command, "--model", str(TOKENIZER_ONLY), "--data", str(folder_dataset)]
    if command == "train":
        arguments += ["--mode", "lora", "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --model {TOKENIZER_ONLY} has no model weights (no model*.safetensors file): it holds only the configuration "
        "and the tokenizer; pass a model's folder with its weights, or a Hugging Face id such as "
        "microsoft/Phi-3.5-vision-instruct\n"
    )


@pytest.mark.slow
def test_an_adapter_as_the_model_to_train_is_explained(finished_run, folder_dataset, tmp_path):
    result = CliRunner().invoke(
        main, ["--data", str(folder_dataset), "--output-dir", str(tmp_path / "out"), *TINY_RUN, "--model", str(finished_run)]
    )
    assert result.exit_code == 2
    assert f"--model {finished_run} is a LoRA adapter, not a model: train on its base model" in result.stderr


def test_version_and_short_help_work_as_in_phi3v_data():
    from importlib.metadata import version

    assert CliRunner().invoke(main, ["--version"]).output == f"phi3v-train, version {version('phi3v-data')}\n"
    for command in ([], ["train"], ["eval"]):
        result = CliRunner().invoke(main, [*command, "-h"])
        assert result.exit_code == 0 and "Usage: " in result.output and "Exit status:" in result.output


def test_ctrl_c_outside_training_exits_3_saying_so(folder_dataset, tmp_path, monkeypatch):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr("phi3v_train.evaluate.run_evaluation", interrupted)
    result = CliRunner().invoke(main, ["eval", "--model", str(TINY_MODEL), "--data", str(folder_dataset)])
    assert (result.exit_code, result.stderr) == (3, "Error: interrupted: nothing was saved\n")


def test_a_signal_during_training_asks_for_a_checkpoint_after_the_step(monkeypatch):
    from phi3v_train.stopping import StopOnSignal

    said = []
    stop = StopOnSignal(said.append)
    before = signal.getsignal(signal.SIGTERM)
    state = SimpleNamespace(global_step=7)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    with stop.installed():
        stop.on_train_begin(None, state, control)
        os.kill(os.getpid(), signal.SIGTERM)  # handled before the next line runs
        stop.on_step_end(None, state, control)
        assert (control.should_save, control.should_training_stop, stop.stopped_after) == (True, True, 7)
        assert said == ["SIGTERM: saving a checkpoint after step 7 and stopping (signal again to stop at once)"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a second signal stops at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_last_step_ends_the_run_whatever_the_signal():
    from phi3v_train.stopping import StopOnSignal

    stop = StopOnSignal(lambda line: None)
    stop.requested = True
    control = SimpleNamespace(should_save=False, should_training_stop=True)  # the last step
    stop.on_step_end(None, SimpleNamespace(global_step=4), control)
    assert not control.should_save and stop.stopped_after is None


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_3_and_the_printed_command_resumes(folder_dataset, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "phi3v_train", "--data", str(folder_dataset), "--output-dir", str(out), *TINY_RUN,
        "--max-steps", "15", "--dataloader-workers", "1",
    ]
    # Its own process group, signalled whole as a scheduler does: the data-loader worker gets SIGTERM too.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    printed = []
    for line in child.stdout:
        printed.append(line)
        if line.startswith("step "):
            os.killpg(child.pid, signal.SIGTERM)
            break
    rest, errors = child.communicate(timeout=600)
    stdout = "".join(printed) + rest
    assert child.returncode == 3, stdout + errors
    stopped = int(errors.split("after step ")[1].split(" ")[0])
    assert 1 <= stopped < 15
    assert f"SIGTERM: saving a checkpoint after step {stopped} and stopping" in stdout
    resume = f"phi3v-train --config {out / RUN_CONFIG_NAME} --resume"
    assert errors == (
        f"Error: interrupted by SIGTERM after step {stopped} of 15; {out / f'checkpoint-{stopped}'} holds the run so "
        f"far: continue it with `{resume}`\n"
    )
    assert not any(noise in stdout + errors for noise in LIBRARY_NOISE)
    assert not (out / "adapter_model.safetensors").exists()  # an unfinished run leaves no model to mistake for one

    resumed = CliRunner().invoke(main, shlex.split(resume)[1:])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming from {out / f'checkpoint-{stopped}'}" in resumed.output
    steps = [int(line.split("/")[0].removeprefix("step ")) for line in resumed.output.splitlines() if "| loss " in line]
    assert steps == list(range(stopped + 1, 16))
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_on_a_terminal_training_shows_a_bar_with_the_time_left_and_the_log_lines_above_it(folder_dataset, tmp_path):
    command = [sys.executable, "-m", "phi3v_train", "--data", str(folder_dataset), "--output-dir", str(tmp_path / "out"),
               *TINY_RUN, "--max-steps", "3"]
    status, shown = run_in_a_terminal(command)
    assert status == 0, shown
    assert "training: 100%" in shown and "| 3/3 [00:" in shown and "step/s]" in shown  # elapsed<left, the rate
    assert "step 3/3 | loss" in shown
    assert not any(noise in shown for noise in LIBRARY_NOISE)


def test_training_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    state = SimpleNamespace(is_world_process_zero=True, global_step=0, max_steps=3)
    lines, terminal = [], io.StringIO()
    plain, with_bar = TrainingProgress(lines.append), TrainingProgress(lines.append, terminal)
    for progress in (plain, with_bar):
        progress.on_train_begin(None, state, None)
        for step in (1, 2, 3):
            state.global_step = step
            progress.on_step_end(None, state, None)
            progress.on_log(None, state, None, logs={"loss": 1.5})
        progress.on_train_end(None, state, None)
        state.global_step = 0
    assert lines == ["step 1/3 | loss 1.5", "step 2/3 | loss 1.5", "step 3/3 | loss 1.5"]  # the plain one only
    shown = terminal.getvalue()
    assert "step 3/3 | loss 1.5" in shown and "training: 100%" in shown and "3/3" in shown


def test_evaluation_progress_prints_a_line_per_tenth_of_the_records():
    lines = []
    progress = RecordProgress(100, lines.append)
    for _ in range(50):
        progress.advance(2)
    assert len(lines) == 11 and lines[0].startswith("generating: 2/100 records, ")
    assert lines[-1].startswith("generating: 100/100 records") and lines[-1].endswith("about 0:00:00 left")
