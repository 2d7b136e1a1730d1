"""The native classes load and save the official layout: same config keys, parameter names and shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from phi3v_train import Phi3VConfig, Phi3VForCausalLM

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLIC_CODE = "microsoft/Phi-3.5-vision-instruct--"


def _read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_config_is_the_real_config_shrunk_by_the_generator(tiny_model_dir, real_model_files_dir, tiny_generator):
    real = _read_json(real_model_files_dir / "config.json")
    tiny = _read_json(tiny_model_dir / "config.json")

    assert tiny == tiny_generator.tiny_config(real)
    assert set(tiny) == set(real) - {"_attn_implementation"} | {"vision_config"}
    assert tiny["vocab_size"] == 32064 and tiny["max_position_embeddings"] == 131072
    assert tiny["embd_layer"] == real["embd_layer"]


def test_tokenizer_and_processor_files_are_the_real_ones(tiny_model_dir, real_model_files_dir, tiny_generator):
    for name in tiny_generator.COPIED_FILES:
        assert (tiny_model_dir / name).read_bytes() == (real_model_files_dir / name).read_bytes(), name


def test_the_tiny_model_is_data_only_and_small(tiny_model_dir):
    assert not list(tiny_model_dir.glob("*.py"))
    assert (tiny_model_dir / "model.safetensors").stat().st_size < 10_000_000


def test_the_official_config_builds_the_official_checkpoints_parameters(real_model_files_dir):
    official = _read_json(real_model_files_dir / "checkpoint_parameters.json")["parameters"]
    config = Phi3VConfig.from_pretrained(real_model_files_dir)
    with torch.device("meta"):
        model = Phi3VForCausalLM(config)

    shapes = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}

    assert shapes == official
    assert sum(parameter.numel() for parameter in model.parameters()) == 4_146_621_440
    assert config.vision_config.hidden_size == 1024 and config.vision_config.num_hidden_layers == 24
    assert config.rope_parameters["rope_type"] == "longrope"


def test_the_tiny_checkpoint_loads_by_its_official_names_with_nothing_missing(tiny_model_dir):
    model, info = Phi3VForCausalLM.from_pretrained(tiny_model_dir, output_loading_info=True)
    with safe_open(tiny_model_dir / "model.safetensors", "pt") as stored:
        stored_names = set(stored.keys())

    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    assert stored_names == set(model.state_dict())
    assert "model.vision_embed_tokens.img_processor.vision_model.encoder.layers.0.self_attn.q_proj.weight" in stored_names
    assert not any(".wte." in name for name in stored_names)
    assert model.dtype == torch.float32  # the tiny config.json's torch_dtype


def test_saving_writes_the_official_layout_and_a_config_the_public_code_reads(model, load_processor, tmp_path):
    model.save_pretrained(tmp_path)

    with safe_open(tmp_path / "model.safetensors", "pt") as saved:
        names = set(saved.keys())
    config = _read_json(tmp_path / "config.json")
    assert names == set(model.state_dict())  # the embedding once, under model.embed_tokens
    assert config["model_type"] == "phi3_v" and config["architectures"] == ["Phi3VForCausalLM"]
    assert config["auto_map"] == {
        "AutoConfig": PUBLIC_CODE + "configuration_phi3_v.Phi3VConfig",
        "AutoModelForCausalLM": PUBLIC_CODE + "modeling_phi3_v.Phi3VForCausalLM",
    }
    tiny = _read_json(Path(model.config.name_or_path) / "config.json")
    assert config["rope_scaling"] == tiny["rope_scaling"]  # {"type": "su", long_factor, short_factor}
    for key in ("embd_layer", "img_processor", "vision_config", "original_max_position_embeddings", "rope_theta"):
        assert config[key] == tiny[key], key
    assert "rope_parameters" not in config and config["torch_dtype"] == "float32"

    reloaded = Phi3VForCausalLM.from_pretrained(tmp_path).eval()
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name


def test_the_official_config_round_trips_through_saving(real_model_files_dir, tmp_path):
    Phi3VConfig.from_pretrained(real_model_files_dir).save_pretrained(tmp_path)

    saved, official = _read_json(tmp_path / "config.json"), _read_json(real_model_files_dir / "config.json")
    assert "vision_config" not in saved  # ViT-L/14-336, as the public code hard-codes it
    for key in ("model_type", "architectures", "rope_scaling", "embd_layer", "img_processor", "vocab_size"):
        assert saved[key] == official[key], key


def test_nothing_in_the_project_runs_remote_code():
    sources = [*REPO_ROOT.glob("phi3v_train/**/*.py"), *REPO_ROOT.glob("bench/*.py"), *REPO_ROOT.glob("tests/**/*.py")]

    needle = "trust_remote_code" + "=True"  # spelt in two parts so that this file does not match itself
    users = [str(path) for path in sources if needle in path.read_text(encoding="utf-8")]

    assert users == []


def test_loads_offline_in_a_fresh_process_without_writing_to_the_checkout(tiny_model_dir, tmp_path):
    script = (
        "import sys\n"
        "from PIL import Image\n"
        "from phi3v_train import Phi3VForCausalLM, Phi3VProcessor\n"
        "model = Phi3VForCausalLM.from_pretrained(sys.argv[1])\n"
        "processor = Phi3VProcessor.from_pretrained(sys.argv[1], num_crops=1)\n"
        "inputs = processor('<|image_1|>hi', images=[Image.new('RGB', (64, 48))])\n"
        "print(int((inputs['input_ids'] < 0).sum()), model(**inputs).logits.shape[1])\n"
    )
    before = {path: path.stat().st_mtime_ns for path in tiny_model_dir.rglob("*")}
    environment = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1", "PATH": ""}

    result = subprocess.run(
        [sys.executable, "-c", script, str(tiny_model_dir)], env=environment, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["313", "316"]
    assert {path: path.stat().st_mtime_ns for path in tiny_model_dir.rglob("*")} == before
