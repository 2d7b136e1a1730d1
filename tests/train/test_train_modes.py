"""Every mode on the tiny model: what trains, what stays frozen, what is saved and how it reloads.

Full fine-tuning under DeepSpeed runs in ``test_train_deepspeed.py`` (a process of its own).
"""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import TINY_MODEL, step_losses, train_config
from safetensors import safe_open

from phi3v_data.manifest import require_validated
from phi3v_data.prompt import IGNORE_INDEX
from phi3v_train.data import RecordDataset, load_split
from phi3v_train.hardware import Numerics
from phi3v_train.model import load_model, load_trained, prepare_for_mode
from phi3v_train.trainer import run_training

FP32_EAGER = Numerics("eager", "fp32")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@pytest.fixture(scope="module")
def mixed_items(mixed_dataset):
    """The mixed training records as dataset items, by id."""
    records = load_split(mixed_dataset, require_validated(mixed_dataset), "train")
    dataset = RecordDataset(records)
    return {entry.record.id: dataset[index] for index, entry in enumerate(records)}


def fresh_model(**options):
    return load_model(str(TINY_MODEL), FP32_EAGER, **options)


def forward(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def per_sample_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over each row's labelled tokens (the model's loss, per record)."""
    shifted_labels = labels[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), shifted_labels, ignore_index=IGNORE_INDEX, reduction="none")
    labelled = shifted_labels != IGNORE_INDEX
    return (losses * labelled).sum(dim=1) / labelled.sum(dim=1)


def base_name(peft_name: str) -> str:
    """``base_model.model.X.base_layer.weight`` -> ``X.weight``."""
    return peft_name.removeprefix("base_model.model.").replace(".base_layer", "")


def test_a_batch_of_two_gives_each_record_the_loss_it_has_alone(collator, mixed_items):
    model = fresh_model().eval()
    for pair in (("two-images", "tagged"), ("text-only", "two-turns"), ("tagged", "text-only")):
        together = collator([mixed_items[key] for key in pair])
        both = per_sample_losses(forward(model, together), together["labels"])
        for row, key in enumerate(pair):
            alone = collator([mixed_items[key]])
            assert both[row].item() == pytest.approx(per_sample_losses(forward(model, alone), alone["labels"]).item(), abs=1e-5)


def test_lora_targets_follow_the_cookbook_and_freeze_vision_leaves_the_tower_alone(tmp_path):
    config = train_config(tmp_path, [tmp_path])
    trainable = {name for name, parameter in prepare_for_mode(fresh_model(), config).named_parameters() if parameter.requires_grad}
    assert trainable and all(".lora_" in name for name in trainable)
    for target in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head", "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "img_projection.0", "img_projection.2"):
        assert any(f".{target}.lora_A" in name for name in trainable), target
    frozen_vision = prepare_for_mode(fresh_model(), train_config(tmp_path, [tmp_path], freeze_vision=True))
    trainable = {name for name, parameter in frozen_vision.named_parameters() if parameter.requires_grad}
    assert trainable and not any("vision_embed_tokens" in name for name in trainable)
    assert any(".lm_head.lora_A" in name for name in trainable)


def test_lora_drops_only_the_clip_layers_that_never_reach_the_output(collator, mixed_items, tmp_path):
    model = fresh_model().eval()
    batch = collator([mixed_items["two-images"]])
    before = forward(model, batch)
    adapted = prepare_for_mode(model, train_config(tmp_path, [tmp_path]))
    clip_layers = adapted.get_base_model().model.vision_embed_tokens.img_processor.vision_model.encoder.layers
    assert len(clip_layers) == 1  # the tiny CLIP has 2 layers and the features come from the second-to-last
    with adapted.disable_adapter():
        assert torch.allclose(forward(adapted, batch), before, atol=1e-6)


@pytest.mark.slow
def test_lora_trains_adapters_only_and_the_saved_adapter_reloads_to_the_same_outputs(
    folder_dataset, mixed_dataset, collator, mixed_items, tmp_path
):
    config = train_config(
        tmp_path / "out", [folder_dataset, mixed_dataset], eval_data=mixed_dataset, max_steps=3, batch_size=2, micro_batch_size=2
    )
    result = run_training(config)
    assert sorted(step_losses(result.log_history)) == [1, 2, 3]
    assert [entry["step"] for entry in result.log_history if "eval_loss" in entry] == [3]  # the val split, at the end
    assert 0 < result.trainable_parameters < result.total_parameters

    original = dict(fresh_model().named_parameters())
    trained = result.model.eval()
    for name, parameter in trained.named_parameters():
        if ".lora_" not in name:
            assert torch.equal(parameter, original[base_name(name)]), name

    out = config.output_dir
    assert all((out / name).is_file() for name in ("adapter_config.json", "adapter_model.safetensors", *PROCESSOR_FILES))
    with safe_open(out / "adapter_model.safetensors", "pt") as saved:
        assert all("lora_" in key for key in saved.keys())  # no copy of the frozen embeddings or lm_head

    with safe_open(out / "adapter_model.safetensors", "pt") as saved, safe_open(TINY_MODEL / "model.safetensors", "pt") as base:
        # Adapters name the official checkpoint's modules, so they apply to it wherever it is loaded.
        adapted = {key.removeprefix("base_model.model.").split(".lora_")[0] + ".weight" for key in saved.keys()}
        assert adapted <= set(base.keys())
        assert any(".img_processor.vision_model.encoder.layers.0.self_attn.q_proj." in name for name in adapted)

    batch = collator([mixed_items["two-images"], mixed_items["text-only"]])
    reloaded = load_trained(out, Numerics("sdpa", "fp32")).eval()  # the kernel the run trained with
    assert torch.equal(forward(reloaded, batch), forward(trained, batch))
    assert not torch.allclose(forward(fresh_model().eval(), batch), forward(reloaded, batch), atol=1e-4)


@pytest.mark.slow
def test_frozen_vision_changes_the_language_model_and_not_the_vision_tower(folder_dataset, tmp_path):
    config = train_config(tmp_path / "out", [folder_dataset], mode="frozen-vision", max_steps=2)
    result = run_training(config)
    original = dict(fresh_model().named_parameters())
    trained = dict(result.model.named_parameters())
    # The cookbook freezes the public code's vision module, which holds the token embedding (`wte`) too.
    frozen = [name for name in trained if ".vision_embed_tokens." in name] + ["model.embed_tokens.weight"]
    assert all(torch.equal(trained[name], original[name]) for name in frozen)
    assert not torch.equal(trained["lm_head.weight"], original["lm_head.weight"])
    assert not torch.equal(trained["model.layers.0.self_attn.qkv_proj.weight"], original["model.layers.0.self_attn.qkv_proj.weight"])
    assert result.trainable_parameters == sum(p.numel() for name, p in trained.items() if name not in frozen)
    assert (config.output_dir / "model.safetensors").is_file()
    assert all((config.output_dir / name).is_file() for name in ("config.json", *PROCESSOR_FILES))
    saved_config = json.loads((config.output_dir / "config.json").read_text())
    assert saved_config["auto_map"]["AutoModelForCausalLM"] == "microsoft/Phi-3.5-vision-instruct--modeling_phi3_v.Phi3VForCausalLM"


@pytest.mark.slow
def test_qlora_trains_adapters_on_a_4bit_nf4_model(folder_dataset, tmp_path):
    import bitsandbytes

    config = train_config(tmp_path / "out", [folder_dataset], mode="qlora", max_steps=2)
    result = run_training(config)
    assert sorted(step_losses(result.log_history)) == [1, 2]
    quantized = {name: module for name, module in result.model.named_modules() if isinstance(module, bitsandbytes.nn.Linear4bit)}
    assert any(name.endswith("qkv_proj.base_layer") for name in quantized)
    assert all(module.weight.quant_type == "nf4" for module in quantized.values())
    assert all(not module.weight.requires_grad for module in quantized.values())
    original = dict(fresh_model(quantize_4bit=True, device_map={"": "cpu"}).named_parameters())
    for name, parameter in result.model.named_parameters():
        if ".lora_" not in name and base_name(name) in original:
            assert torch.equal(parameter, original[base_name(name)]), name
    assert (config.output_dir / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_text_only_records_train_and_too_long_records_are_skipped(mixed_dataset, tmp_path):
    messages: list[str] = []
    config = train_config(tmp_path / "out", [mixed_dataset], max_steps=2, max_length=100)
    result = run_training(config, echo=messages.append)
    assert result.skipped_records == 3  # every record with an image is over 300 tokens at num_crops 1
    assert "skipped 3 of 4 training records longer than --max-length 100" in messages
    assert sorted(step_losses(result.log_history)) == [1, 2]


@pytest.mark.slow
def test_the_loss_falls_when_overfitting_a_few_records(folder_dataset, tmp_path):
    config = train_config(tmp_path / "out", [folder_dataset], max_steps=12, learning_rate=5e-2, batch_size=2, micro_batch_size=2)
    losses = step_losses(run_training(config).log_history)
    assert sum(losses[step] for step in (10, 11, 12)) / 3 < losses[1] / 2


@pytest.mark.slow
def test_resuming_continues_with_the_losses_of_an_uninterrupted_run(folder_dataset, mixed_dataset, tmp_path):
    def config(output_dir, **overrides):
        return train_config(output_dir, [folder_dataset, mixed_dataset], max_steps=6, save_steps=3, **overrides)

    uninterrupted = step_losses(run_training(config(tmp_path / "whole")).log_history)
    # A run stopped after its third step: the same output folder with only the first checkpoint.
    shutil.copytree(tmp_path / "whole" / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    messages: list[str] = []
    resumed = step_losses(run_training(config(tmp_path / "resumed", resume="auto"), echo=messages.append).log_history)
    assert f"resuming from {tmp_path / 'resumed' / 'checkpoint-3'}" in messages
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-5), step
    # The data position matters: the steps after the checkpoint see other records than the first ones.
    assert len({round(uninterrupted[step], 3) for step in range(1, 7)}) == 6
