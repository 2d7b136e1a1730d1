"""Settings from defaults, YAML and the command line; the two command forms; every shipped config."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from phi3v_data.errors import UsageError
from phi3v_train.cli import main
from phi3v_train.config import EvalConfig, TrainConfig, load_yaml, resolve, to_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))
REQUIRED = ["--data", "d", "--model", "m", "--mode", "lora", "--output-dir", "out"]


def print_config(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--print-config"])
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)


def test_defaults_are_the_cookbooks():
    config = print_config(*REQUIRED)
    assert config["batch_size"] == 16 and config["micro_batch_size"] == 1
    assert (config["learning_rate"], config["weight_decay"]) == (4e-5, 0.01)
    assert config["warmup_steps"] is None  # 50, the cookbook's, but at most a tenth of the run
    assert (config["lora_rank"], config["lora_alpha_ratio"], config["lora_dropout"]) == (64, 2.0, 0.0)
    assert config["num_crops"] is None  # decided from the data: 4 for multi-image records, else 16
    assert config["report_to"] == [] and config["activation_checkpointing"] is True


def test_training_is_the_default_command():
    assert print_config(*REQUIRED) == print_config("train", *REQUIRED)


def test_the_command_line_overrides_the_yaml_file(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("model: m\nmode: qlora\noutput-dir: out\ndata: d1\nnum_crops: 4\nlora_rank: 8\nvalidate: true\n")
    config = print_config("--config", str(file), "--lora-rank", "16", "--data", "d2", "--data", "d3", "--bf16")
    assert config["mode"] == "qlora" and config["num_crops"] == 4 and config["validate"] is True
    assert config["lora_rank"] == 16 and config["data"] == ["d2", "d3"] and config["precision"] == "bf16"


def test_printed_config_loads_back_unchanged(tmp_path):
    printed = CliRunner().invoke(main, [*REQUIRED, "--resume", "--fp16", "--report-to", "tensorboard", "--print-config"])
    file = tmp_path / "printed.yaml"
    file.write_text(printed.output)
    assert print_config("--config", str(file)) == yaml.safe_load(printed.output)
    assert yaml.safe_load(printed.output)["resume"] == "auto"  # --resume alone means the newest checkpoint


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-steps", "5", "--epochs", "1"], "give --max-steps or --epochs, not both"),
        (["--num-crops", "17"], "--num-crops Input should be less than or equal to 16"),
        (["--freeze-vision", "--mode", "full"], "use --mode frozen-vision"),
        (["--batch-size", "6", "--micro-batch-size", "4"], "not a multiple of --micro-batch-size 4"),
        (["--mode", "adapter"], "'adapter' is not one of"),
    ],
)
def test_incoherent_options_are_refused_with_the_option_named(arguments, message):
    result = CliRunner().invoke(main, [*REQUIRED, *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_and_unknown_settings_are_named(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("mode: lora\nlearning_rte: 0.1\n")
    result = CliRunner().invoke(main, ["--config", str(file), "--data", "d"])
    assert result.exit_code == 2
    assert "--model is required" in result.output and "--output-dir is required" in result.output
    assert f"--learning-rte is not an option (in {file})" in result.output


def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path):
    file = tmp_path / "list.yaml"
    file.write_text("- lora\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        load_yaml(file)


def test_the_deepspeed_launchers_local_rank_argument_is_accepted():
    assert print_config(*REQUIRED, "--local_rank=3") == print_config(*REQUIRED)


def test_eval_is_a_command_of_its_own():
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    assert "--base-model" in result.output and "--max-new-tokens" in result.output and "--mode " not in result.output
    missing = CliRunner().invoke(main, ["eval", "--data", "d"])
    assert missing.exit_code == 2 and "--model is required" in missing.output


def test_eval_settings_resolve_like_training_settings():
    config = resolve(EvalConfig, {"model": "out", "data": "d"}, {"max_new_tokens": 8, "validate_data": True})
    assert config.model == Path("out") and config.max_new_tokens == 8 and config.validate_data


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda path: path.name)
def test_every_shipped_config_is_valid(path):
    config = TrainConfig.model_validate(load_yaml(path))
    assert config.model == "microsoft/Phi-3.5-vision-instruct"
    assert config.num_crops is None or config.num_crops <= 16
    assert TrainConfig.model_validate(yaml.safe_load(to_yaml(config))) == config


def test_configs_are_shipped():
    assert {path.name for path in SHIPPED_CONFIGS} >= {"ucf101-lora.yaml", "hateful-memes-qlora-2gpu.yaml"}


@pytest.mark.parametrize(
    ("file_text", "arguments", "expected"),
    [
        ("epochs: 2\n", ["--max-steps", "5"], {"max_steps": 5, "epochs": None}),
        ("max_steps: 5\n", ["--epochs", "2"], {"max_steps": None, "epochs": 2.0}),
        ("overwrite: true\n", ["--resume"], {"resume": "auto", "overwrite": False}),
        ("resume: auto\n", ["--overwrite"], {"resume": None, "overwrite": True}),
        ("packing: true\nmax_tokens_per_batch: 4096\n", ["--no-packing"], {"packing": False, "max_tokens_per_batch": None}),
        ("group_by_length: true\nlengths: l.jsonl\n", ["--no-group-by-length"], {"group_by_length": False, "lengths": None}),
        ("freeze_vision: true\n", ["--mode", "full"], {"mode": "full", "freeze_vision": False}),
        ("validate: true\n", ["--no-validate"], {"validate": False}),
    ],
    ids=["max-steps-over-epochs", "epochs-over-max-steps", "resume-over-overwrite", "overwrite-over-resume",
         "no-packing", "no-grouping", "full-over-freeze-vision", "alias"],
)
def test_a_command_line_value_wins_over_the_file_values_it_contradicts(tmp_path, file_text, arguments, expected):
    file = tmp_path / "run.yaml"
    file.write_text("model: m\nmode: lora\noutput_dir: out\ndata: d\n" + file_text)
    config = print_config("--config", str(file), *arguments)
    assert {key: config[key] for key in expected} == expected


def test_null_on_the_command_line_unsets_an_optional_file_value(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("model: m\nmode: lora\noutput_dir: out\ndata: d\nepochs: 3\nnum_crops: 4\nresume: auto\nattn: eager\n")
    config = print_config("--config", str(file), "--epochs", "null", "--num-crops", "null", "--resume", "null", "--attn", "null")
    assert (config["epochs"], config["num_crops"], config["resume"], config["attn"]) == (None, None, None, None)
    assert print_config("--config", str(file), "--max-steps", "null")["epochs"] == 3  # unsetting one keeps the other


def test_null_is_offered_only_where_a_setting_may_be_unset():
    result = CliRunner().invoke(main, ["train", "--help"], terminal_width=1000)
    assert "--epochs FLOAT|null" in result.output and "--attn [eager|sdpa|flash_attention_2|null]" in result.output
    assert "--batch-size INTEGER " in result.output
    refused = CliRunner().invoke(main, [*REQUIRED, "--batch-size", "null"])
    assert refused.exit_code == 2 and "'null' is not a valid integer" in refused.output


def test_both_of_an_exclusive_pair_on_the_command_line_are_still_refused():
    result = CliRunner().invoke(main, [*REQUIRED, "--resume", "--overwrite"])
    assert result.exit_code == 2
    assert "--resume continues the run in --output-dir and --overwrite replaces it: give one" in result.output
    evaluation = CliRunner().invoke(main, ["eval", "--model", "m", "--data", "d", "--output-dir", "o", "--predictions", "p"])
    assert evaluation.exit_code == 2 and "--predictions names the file and --output-dir its folder: give one" in evaluation.output


def test_an_eval_file_destination_gives_way_to_the_command_lines():
    config = resolve(EvalConfig, {"model": "m", "data": "d", "output_dir": "o"}, {"predictions": Path("p.jsonl")})
    assert (config.output_dir, config.predictions) == (None, Path("p.jsonl"))
