"""Phi-3(.5)-vision on transformers' own Phi-3 language model and CLIP vision layers.

Only the Phi-3-V glue is written here: the CLIP tower read at its feature layer, the HD transform that
lays each image's crops out as rows (``sub_glb`` order: the crops with a ``sub_GN`` separator after
every row, ``glb_GN``, then the global view with its own row separators), the 2x2 merge of patches into
4x wider features, the ``img_projection`` MLP, and placing the features where the processor put an
image's (negative) ids. The caller's ``input_ids`` are never modified.

Module names are the official checkpoint's, so weights load and save by their own names
(``model.vision_embed_tokens.img_processor.vision_model.encoder.layers.0.self_attn.q_proj.weight``,
``model.layers.0.self_attn.qkv_proj.weight``, ``lm_head.weight``) and PEFT adapters name the same
modules as adapters trained on the public code. The public code also keeps the token embedding as
``vision_embed_tokens.wte``; the checkpoint does not store it, and neither module holds it here.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.clip.modeling_clip import CLIPEncoder, CLIPVisionEmbeddings
from transformers.models.phi3.modeling_phi3 import Phi3ForCausalLM, Phi3Model, Phi3PreTrainedModel

from phi3v_data.hd_crop import CROP_SIZE
from phi3v_train.hardware import FLASH_ATTENTION, Hardware, flash_attention_obstacle
from phi3v_train.modeling.configuration_phi3_v import Phi3VConfig

# The 24x24 CLIP patches of a crop are merged 2x2 into 12x12 positions of 4x the width.
MERGE = 2


def default_attention() -> str:
    """flash_attention_2 where flash-attn is installed and the GPU runs it (Ampere or newer), else sdpa:
    the trainer's rule (:func:`phi3v_train.hardware.flash_attention_obstacle`)."""
    return "sdpa" if flash_attention_obstacle(Hardware.detect()) else FLASH_ATTENTION


class CLIPVisionTower(nn.Module):
    """CLIP's vision transformer under the checkpoint's names, run up to the layer features are read from.

    ``hidden_states[k]`` of CLIP is the output of its first ``k`` layers (``[0]``: the embeddings after
    ``pre_layrnorm``), so ``layer_idx`` -2 needs all layers but the last. The layers after it and
    ``post_layernorm`` stay in the module, so the checkpoint loads and saves whole.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor, layer_idx: int) -> torch.Tensor:
        hidden_states = self.pre_layrnorm(self.embeddings(pixel_values))
        layers = self.encoder.layers
        for layer in layers[: layer_idx % (len(layers) + 1)]:
            hidden_states = layer(hidden_states, None)
        return hidden_states


class CLIPImageProcessorModule(nn.Module):
    """The ``img_processor`` level of the checkpoint's names, holding ``vision_model``."""

    def __init__(self, config):
        super().__init__()
        self.vision_model = CLIPVisionTower(config)

    def forward(self, pixel_values: torch.Tensor, layer_idx: int) -> torch.Tensor:
        return self.vision_model(pixel_values, layer_idx)


class Phi3VImageEmbedding(nn.Module):
    """Image crops to one row of projected features per image position of the prompt."""

    def __init__(self, config: Phi3VConfig):
        super().__init__()
        config.validate_architecture()
        width = config.image_dim_out * MERGE * MERGE
        self.img_processor = CLIPImageProcessorModule(config.vision_config)
        self.glb_GN = nn.Parameter(torch.zeros(1, 1, width))
        self.sub_GN = nn.Parameter(torch.zeros(1, 1, 1, width))
        self.img_projection = nn.Sequential(
            nn.Linear(width, config.hidden_size), nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size)
        )
        self.layer_idx = config.feature_layer
        patches = config.vision_config.image_size // config.vision_config.patch_size
        self.merged_side = patches // MERGE

    def forward(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
        """``pixel_values`` ``[images, crops, 3, 336, 336]`` (global view first, unused crops zero) and
        ``image_sizes`` ``[images, 2]`` (padded height, width) to ``[image positions, hidden]``."""
        grids = [(int(height) // CROP_SIZE, int(width) // CROP_SIZE) for height, width in image_sizes.tolist()]
        # Only the global view and the crops an image really has go through CLIP; the zero padding does not.
        used = [pixel_values[index, : 1 + rows * columns] for index, (rows, columns) in enumerate(grids)]
        crops = torch.cat(used).to(self.img_projection[0].weight.dtype)
        features = self.img_processor(crops, self.layer_idx)[:, 1:]  # the CLS token is not a patch
        merged = self._merge_2x2(features)
        rows_of_images = []
        start = 0
        for rows, columns in grids:
            image = merged[start : start + 1 + rows * columns]
            start += 1 + rows * columns
            rows_of_images += [
                self._with_row_separators(self._tile(image[1:], rows, columns)),
                self.glb_GN.squeeze(0),
                self._with_row_separators(self._tile(image[:1], 1, 1)),
            ]
        return self.img_projection(torch.cat(rows_of_images))

    def _merge_2x2(self, features: torch.Tensor) -> torch.Tensor:
        """``[crops, 24*24, C]`` to ``[crops, 12, 12, 4C]``: each 2x2 block of patches side by side."""
        crops, _, channels = features.shape
        side = self.merged_side
        blocks = features.reshape(crops, side, MERGE, side, MERGE, channels).permute(0, 1, 3, 2, 4, 5)
        return blocks.reshape(crops, side, side, MERGE * MERGE * channels)

    @staticmethod
    def _tile(crops: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
        """``rows x columns`` merged crops (row-major) as one ``[rows*12, columns*12, 4C]`` image."""
        _, side, _, width = crops.shape
        grid = crops.reshape(rows, columns, side, side, width).permute(0, 2, 1, 3, 4)
        return grid.reshape(rows * side, columns * side, width)

    def _with_row_separators(self, image: torch.Tensor) -> torch.Tensor:
        """A ``sub_GN`` after each row of positions, flattened to ``[rows*(columns+1), 4C]``."""
        height = image.shape[0]
        separators = self.sub_GN.reshape(1, 1, -1).expand(height, 1, -1)
        return torch.cat([image, separators], dim=1).reshape(-1, image.shape[-1])


class Phi3VPreTrainedModel(Phi3PreTrainedModel):
    config_class = Phi3VConfig
    config: Phi3VConfig
    _no_split_modules = ["Phi3DecoderLayer", "CLIPEncoderLayer"]

    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, CLIPVisionEmbeddings):
            init.normal_(module.class_embedding, std=module.embed_dim**-0.5)
            init.copy_(module.position_ids, torch.arange(module.num_positions).expand((1, -1)))
        elif isinstance(module, Phi3VImageEmbedding):
            init.normal_(module.glb_GN, std=std)
            init.normal_(module.sub_GN, std=std)


class Phi3VModel(Phi3VPreTrainedModel, Phi3Model):
    """The Phi-3 decoder with ``vision_embed_tokens``: image features replace the image positions' embeddings."""

    def __init__(self, config: Phi3VConfig):
        Phi3Model.__init__(self, config)
        vision = config.vision_config
        if vision._attn_implementation is None:
            # The CLIP layers are not a model of their own, so nothing else hands them the kernel chosen above.
            vision._attn_implementation_internal = config._attn_implementation
        self.vision_embed_tokens = Phi3VImageEmbedding(config)
        self.embed_dropout = nn.Dropout(config.embd_pdrop)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ):
        if inputs_embeds is None and input_ids is not None:
            inputs_embeds = self.embed_images(input_ids, pixel_values, image_sizes)
        return super().forward(inputs_embeds=inputs_embeds, **kwargs)

    def embed_images(
        self, input_ids: torch.LongTensor, pixel_values: torch.Tensor | None, image_sizes: torch.Tensor | None
    ) -> torch.Tensor:
        """Token embeddings with each image's features at its run of negative ids, in order of appearance."""
        image_positions = input_ids < 0
        embeddings = self.embed_tokens(input_ids.clamp_min(0))
        if pixel_values is None:
            if bool(image_positions.any()):
                raise ValueError("input_ids hold image positions (negative ids) but no pixel_values were given")
            return embeddings + self._unused_vision_term()
        features = self.vision_embed_tokens(pixel_values, image_sizes).to(embeddings.dtype)
        positions = int(image_positions.sum())
        if positions != features.shape[0]:
            raise ValueError(
                f"input_ids hold {positions} image positions but the images give {features.shape[0]} features: "
                "the ids and pixel_values must come from the same processor call (same num_crops)"
            )
        embeddings = embeddings.masked_scatter(image_positions.unsqueeze(-1), features)
        # As the public code: embedding dropout applies to batches with images.
        return self.embed_dropout(embeddings)

    def _unused_vision_term(self) -> torch.Tensor | float:
        """Zero that depends on every trainable vision weight, for text-only training batches.

        DDP and DeepSpeed ZeRO-3 expect the same parameters to take part in every rank's step; a
        text-only batch on one rank and images on another would otherwise stall or fail. The public code
        runs its tower on a dummy image for the same reason.
        """
        tower = self.vision_embed_tokens
        if not self.training or not any(parameter.requires_grad for parameter in tower.parameters()):
            return 0.0
        weight = tower.img_projection[0].weight
        blank = weight.new_zeros(1, 2, 3, CROP_SIZE, CROP_SIZE)
        return tower(blank, torch.tensor([[CROP_SIZE, CROP_SIZE]])).sum() * 0.0


class Phi3VForCausalLM(Phi3VPreTrainedModel, Phi3ForCausalLM):
    """Phi-3.5-vision / Phi-3-vision for generation and fine-tuning.

    >>> model = Phi3VForCausalLM.from_pretrained("microsoft/Phi-3.5-vision-instruct", dtype=torch.bfloat16)
    >>> processor = Phi3VProcessor.from_pretrained("microsoft/Phi-3.5-vision-instruct", num_crops=4)
    >>> inputs = processor("<|user|>\\n<|image_1|>\\nWhat is shown?<|end|>\\n<|assistant|>\\n", [image])
    >>> model.generate(**inputs, max_new_tokens=64)
    """

    def __init__(self, config: Phi3VConfig):
        Phi3PreTrainedModel.__init__(self, config)
        self.model = Phi3VModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # The official config.json asks for flash_attention_2 wherever it is loaded; pick what runs here.
        if kwargs.get("attn_implementation") is None:
            kwargs["attn_implementation"] = default_attention()
        return super().from_pretrained(*args, **kwargs)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_sizes: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values=None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """As ``Phi3ForCausalLM.forward``, with ``pixel_values`` ``[images, crops, 3, 336, 336]`` and
        ``image_sizes`` ``[images, 2]`` for the images whose ids (negative) are in ``input_ids``."""
        if inputs_embeds is None and input_ids is not None:
            inputs_embeds = self.model.embed_images(input_ids, pixel_values, image_sizes)
        # generate() hands the cache over as past_key_values.
        cache = cache if cache is not None else past_key_values
        return super().forward(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def prepare_inputs_for_generation(self, input_ids, pixel_values=None, image_sizes=None, **kwargs):
        model_inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        step_ids = model_inputs.get("input_ids")
        # The images go in with the ids that hold them: the prompt, or the whole sequence again when
        # LongRoPE's switch to its long factors (past 4096 tokens) makes transformers drop the cache.
        if pixel_values is not None and step_ids is not None and bool((step_ids < 0).any()):
            model_inputs["pixel_values"] = pixel_values
            model_inputs["image_sizes"] = image_sizes
        else:
            model_inputs.pop("pixel_values", None)
            model_inputs.pop("image_sizes", None)
        return model_inputs
