"""Phi-3(.5)-vision configuration: transformers' Phi-3 configuration plus the vision keys of ``config.json``.

The official ``config.json`` (``microsoft/Phi-3.5-vision-instruct``, ``microsoft/Phi-3-vision-128k-instruct``)
is read as it is: ``rope_scaling`` ``{"type": "su", ...}`` becomes transformers' ``longrope``
parameters, ``embd_layer`` and ``img_processor`` describe the image embedding. The CLIP tower is
ViT-L/14-336, as the public code hard-codes it; an optional ``vision_config`` dict overrides any of its
keys (tiny test models shrink the tower this way).

Saving writes the layout the public remote code and vLLM read: ``model_type`` ``phi3_v``,
``architectures``, an ``auto_map`` that names the public code on the Hub, ``rope_scaling`` in its "su"
form and ``rope_theta``; ``vision_config`` only when it differs from ViT-L/14-336.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig, Phi3Config

# The public code of the model family; saved folders point their auto_map at it, since they carry no code.
PUBLIC_CODE_REPO = "microsoft/Phi-3.5-vision-instruct"
PUBLIC_AUTO_MAP = {
    "AutoConfig": "configuration_phi3_v.Phi3VConfig",
    "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM",
}

# CLIP ViT-L/14 at 336 pixels, as ``modeling_phi3_v.py`` hard-codes it (CLIP_VIT_LARGE_PATCH14_336_CONFIG).
CLIP_VIT_LARGE_PATCH14_336 = {
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": 1024,
    "image_size": 336,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "num_attention_heads": 16,
    "num_channels": 3,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "projection_dim": 768,
}
DEFAULT_EMBEDDING = {
    "embedding_cls": "image",
    "hd_transform_order": "sub_glb",
    "projection_cls": "mlp",
    "use_hd_transform": True,
    "with_learnable_separator": True,
}
DEFAULT_IMG_PROCESSOR = {
    "image_dim_out": 1024,
    "model_name": "openai/clip-vit-large-patch14-336",
    "name": "clip_vision_model",
    "num_img_tokens": 144,
}


def hub_auto_map(auto_map: dict[str, str], repo: str = PUBLIC_CODE_REPO) -> dict[str, str]:
    """``auto_map`` entries that name their code's Hub repository (``repo--module.Class``).

    A folder written by phi3v-train holds no code, so a bare ``module.Class`` would point at nothing;
    ``trust_remote_code`` loaders fetch the public code from ``repo`` instead.
    """
    return {key: value if "--" in value else f"{repo}--{value}" for key, value in auto_map.items()}


@strict
class Phi3VConfig(Phi3Config):
    """The configuration of :class:`~phi3v_train.modeling.Phi3VForCausalLM`."""

    model_type = "phi3_v"
    sub_configs_defaults = {"vision_config": CLIPVisionConfig}

    embd_layer: dict | None = None
    img_processor: dict | None = None
    vision_config: dict | CLIPVisionConfig | None = None
    auto_map: dict | None = None

    def __post_init__(self, **kwargs):
        # The official file asks for flash_attention_2, which most machines cannot run: the model picks
        # its attention kernel when loaded (see Phi3VForCausalLM.from_pretrained), not from the file.
        kwargs.pop("_attn_implementation", None)
        self.embd_layer = {**DEFAULT_EMBEDDING, **(self.embd_layer or {})}
        self.img_processor = {**DEFAULT_IMG_PROCESSOR, **(self.img_processor or {})}
        if isinstance(self.vision_config, dict):
            self.vision_config = CLIPVisionConfig(**{**CLIP_VIT_LARGE_PATCH14_336, **self.vision_config})
        elif self.vision_config is None:
            self.vision_config = CLIPVisionConfig(**CLIP_VIT_LARGE_PATCH14_336)
        self.auto_map = hub_auto_map(self.auto_map or PUBLIC_AUTO_MAP)
        rope_scaling = kwargs.get("rope_scaling")
        if isinstance(rope_scaling, dict) and rope_scaling.get("type", rope_scaling.get("rope_type")) in ("su", "longrope"):
            # transformers' longrope reads the switch point and the scaling factor from the rope
            # parameters; the public file keeps the switch point at the top level and derives the factor.
            kwargs["rope_scaling"] = {
                **rope_scaling,
                "original_max_position_embeddings": self.original_max_position_embeddings,
                "factor": self.max_position_embeddings / self.original_max_position_embeddings,
            }
        super().__post_init__(**kwargs)

    @property
    def feature_layer(self) -> int:
        """The CLIP hidden state the image features come from (-2: the output of the second-to-last layer)."""
        return self.img_processor.get("layer_idx", -2)

    @property
    def image_dim_out(self) -> int:
        return self.img_processor["image_dim_out"]

    def validate_architecture(self) -> None:
        """Refuse what the public code does not implement either, with the key to change."""
        layer = self.embd_layer
        unsupported = {
            "embd_layer.embedding_cls": (layer["embedding_cls"], "image"),
            "embd_layer.use_hd_transform": (layer["use_hd_transform"], True),
            "embd_layer.with_learnable_separator": (layer["with_learnable_separator"], True),
            "embd_layer.hd_transform_order": (layer["hd_transform_order"], "sub_glb"),
            "embd_layer.projection_cls": (layer["projection_cls"], "mlp"),
            "img_processor.name": (self.img_processor["name"], "clip_vision_model"),
            "img_processor.type_feature": (self.img_processor.get("type_feature", "patch"), "patch"),
            "image_dim_out == vision_config.hidden_size": (self.image_dim_out, self.vision_config.hidden_size),
        }
        for key, (value, supported) in unsupported.items():
            if value != supported:
                raise ValueError(f"Phi3VConfig: {key} = {value!r} is not supported (Phi-3(.5)-vision uses {supported!r})")

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        rope = output.pop("rope_parameters", None) or {}
        output["rope_theta"] = rope.get("rope_theta", 10000.0)
        if rope.get("rope_type") == "longrope":
            # The public configuration_phi3_v.py validates exactly these three keys.
            output["rope_scaling"] = {
                "long_factor": rope["long_factor"],
                "short_factor": rope["short_factor"],
                "type": "su",
            }
        else:
            output["rope_scaling"] = None
        vision = output.get("vision_config")
        if isinstance(vision, dict):
            default = CLIPVisionConfig(**CLIP_VIT_LARGE_PATCH14_336).to_dict()
            changed = {key: value for key, value in vision.items() if key in CLIP_VIT_LARGE_PATCH14_336 and value != default[key]}
            if changed:
                output["vision_config"] = changed
            else:
                output.pop("vision_config")
        return output

    def to_diff_dict(self) -> dict[str, Any]:
        output = super().to_diff_dict()
        # What config.json holds: transformers 4 (vLLM, the public code) reads torch_dtype.
        if output.get("dtype") is not None:
            output["torch_dtype"] = output["dtype"]
        return output
