"""The tiny stand-in loads like the real model: remote code, same config keys, same module names."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, CLIPVisionModel

from phi3v_train.model import declare_shared_weights


def _read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_config_is_the_real_config_shrunk_by_the_generator(tiny_model_dir, real_model_files_dir, tiny_generator):
    real = _read_json(real_model_files_dir / "config.json")
    tiny = _read_json(tiny_model_dir / "config.json")

    assert tiny == tiny_generator.tiny_config(real)
    assert set(tiny) == set(real) - {"_attn_implementation"}
    assert tiny["auto_map"] == {
        "AutoConfig": "configuration_phi3_v.Phi3VConfig",
        "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM",
    }
    assert tiny["vocab_size"] == 32064 and tiny["max_position_embeddings"] == 131072
    assert tiny["embd_layer"] == real["embd_layer"]


def test_tokenizer_and_processor_files_are_the_real_ones(tiny_model_dir, real_model_files_dir, tiny_generator):
    for name in tiny_generator.COPIED_FILES:
        assert (tiny_model_dir / name).read_bytes() == (real_model_files_dir / name).read_bytes(), name


def test_committed_weights_stay_small(tiny_model_dir):
    assert (tiny_model_dir / "model.safetensors").stat().st_size < 5_000_000


def test_loads_through_auto_classes_with_remote_code(tiny_model_dir, load_processor):
    config = AutoConfig.from_pretrained(tiny_model_dir, trust_remote_code=True)
    model, loading_info = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, trust_remote_code=True, output_loading_info=True
    )
    processor = load_processor(4)

    assert type(config).__name__ == "Phi3VConfig" and config.model_type == "phi3_v"
    assert type(config).__module__.startswith("transformers_modules.")
    assert type(model).__name__ == "Phi3VForCausalLM"
    assert type(model).__module__.startswith("transformers_modules.")
    assert loading_info["missing_keys"] == set() and loading_info["unexpected_keys"] == set()
    assert model.dtype == torch.bfloat16  # config.json's torch_dtype, as for the real model
    assert type(processor).__name__ == "Phi3VProcessor"
    assert type(processor.image_processor).__name__ == "Phi3VImageProcessor"
    assert processor.image_processor.num_crops == 4 and processor.num_img_tokens == 144


def test_has_the_real_module_names(model):
    modules = dict(model.named_modules())
    embedding = modules["model.vision_embed_tokens"]
    required = [
        "model.embed_tokens",
        "model.vision_embed_tokens.img_processor",
        "model.vision_embed_tokens.img_projection.0",
        "model.vision_embed_tokens.img_projection.2",
        "model.norm",
        "lm_head",
    ]
    for layer in range(model.config.num_hidden_layers):
        required += [
            f"model.layers.{layer}.self_attn.qkv_proj",
            f"model.layers.{layer}.self_attn.o_proj",
            f"model.layers.{layer}.mlp.gate_up_proj",
            f"model.layers.{layer}.mlp.down_proj",
        ]

    assert [name for name in required if name not in modules] == []
    assert type(embedding).__name__ == "Phi3ImageEmbedding"
    assert isinstance(embedding.img_processor, CLIPVisionModel)
    assert embedding.wte is modules["model.embed_tokens"]
    assert isinstance(embedding.img_projection[0], torch.nn.Linear)
    assert isinstance(embedding.img_projection[1], torch.nn.GELU)
    assert isinstance(embedding.img_projection[2], torch.nn.Linear)
    assert isinstance(embedding.glb_GN, torch.nn.Parameter) and isinstance(embedding.sub_GN, torch.nn.Parameter)
    clip_leaf_names = {name.rsplit(".", 1)[-1] for name in modules if ".img_processor." in name}
    assert {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"} <= clip_leaf_names


def test_forward_takes_the_real_arguments_and_no_others(model):
    parameters = inspect.signature(model.forward).parameters

    assert list(parameters) == [
        "input_ids",
        "attention_mask",
        "position_ids",
        "past_key_values",
        "inputs_embeds",
        "pixel_values",
        "image_sizes",
        "labels",
        "use_cache",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
    ]
    # so the HF Trainer neither passes num_items_in_batch nor hides unknown batch keys
    assert all(parameter.kind != inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())


def test_save_pretrained_fails_as_on_the_real_model_until_the_shared_weights_are_declared(model, tmp_path):
    # The real remote code's list-style `_tied_weights_keys` under transformers 5.
    with pytest.raises(AttributeError, match="'list' object has no attribute 'keys'"):
        model.save_pretrained(tmp_path)
    declare_shared_weights(model)
    assert model._tied_weights_keys == {"model.vision_embed_tokens.wte.weight": "model.embed_tokens.weight"}


def test_save_pretrained_and_from_pretrained_round_trip(model, load_processor, tmp_path):
    processor = load_processor(1)
    declare_shared_weights(model)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, trust_remote_code=True).eval()
    reloaded_processor = type(processor).from_pretrained(tmp_path, trust_remote_code=True)

    assert reloaded.dtype == torch.float32
    reloaded_state = reloaded.state_dict()
    assert list(reloaded_state) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded_state[name], tensor), name
    assert reloaded_processor.image_processor.num_crops == 1


def _snapshot(folder):
    return {path.relative_to(folder): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*")}


def test_loads_offline_into_a_fresh_modules_cache_without_writing_to_the_checkout(tiny_model_dir, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from PIL import Image
        from transformers import AutoModelForCausalLM, AutoProcessor

        path = sys.argv[1]
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True, num_crops=1)
        inputs = processor("<|image_1|>hi", images=[Image.new("RGB", (64, 48))])
        image_tokens = int((inputs["input_ids"] < 0).sum())
        logits = model(**inputs, use_cache=False).logits
        print(image_tokens, logits.shape[1], inputs["input_ids"].shape[1])
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    before = _snapshot(tiny_model_dir)

    result = subprocess.run(
        [sys.executable, "-c", script, str(tiny_model_dir)], env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    image_tokens, logits_length, input_length = map(int, result.stdout.split()[-3:])
    assert image_tokens == 313 and logits_length == input_length
    assert list((tmp_path / "modules").rglob("modeling_phi3_v.py"))
    assert _snapshot(tiny_model_dir) == before
