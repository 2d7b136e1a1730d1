"""Phi-3(.5)-vision's image processor: the HD transform into 336-pixel crops plus a global view.

Each image is resized (bilinear, Pillow) so its longer side spans as many 336-pixel crops as
``num_crops`` allows, padded with white to whole crops along the shorter side (centred), normalised
with CLIP's mean and std, and cut into crops row by row. The global view is the padded image resized
to 336x336 (bicubic, on the normalised tensor). ``pixel_values`` is ``[images, num_crops + 1, 3, 336,
336]``, the global view first and unused crops zero; ``image_sizes`` the padded (height, width);
``num_img_tokens`` the run of ids each image takes in the prompt. The same steps, in the same order,
as the public ``processing_phi3_v.py``, so the pixels are the same.
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.functional as F
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.processing_utils import ImagesKwargs

from phi3v_data.hd_crop import CROP_SIZE, DEFAULT_NUM_CROPS, hd_resize_size, image_token_count

WHITE = (255, 255, 255)


class Phi3VImagesKwargs(ImagesKwargs, total=False):
    """The keys of ``preprocessor_config.json`` beyond transformers' common ones."""

    num_crops: int
    num_img_tokens: int


class Phi3VImageProcessor(BaseImageProcessor):
    """Images to ``pixel_values``, ``image_sizes`` and ``num_img_tokens`` for Phi-3(.5)-vision."""

    model_input_names = ["pixel_values", "image_sizes"]
    valid_kwargs = Phi3VImagesKwargs

    def __init__(
        self,
        num_crops: int = DEFAULT_NUM_CROPS,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        do_convert_rgb: bool = True,
        num_img_tokens: int = 144,
        **kwargs,
    ):
        # Older files carry keys the public class ignores too (auto_map, processor_class).
        kwargs.pop("auto_map", None)
        kwargs.pop("processor_class", None)
        super().__init__(**kwargs)
        self.num_crops = num_crops
        self.image_mean = list(image_mean if image_mean is not None else OPENAI_CLIP_MEAN)
        self.image_std = list(image_std if image_std is not None else OPENAI_CLIP_STD)
        self.do_convert_rgb = do_convert_rgb
        self.num_img_tokens = num_img_tokens

    def preprocess(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        if isinstance(images, Image.Image):
            images = [images]
        images = [_as_pil(image, self.do_convert_rgb) for image in images]
        views = [self._crops_of(image) for image in images]
        pixel_values = torch.stack([_pad_crops(crops, self.num_crops + 1) for crops, _ in views])
        image_sizes = [list(size) for _, size in views]
        num_img_tokens = [image_token_count(image.width, image.height, self.num_crops) for image in images]
        data = {"pixel_values": pixel_values, "image_sizes": image_sizes, "num_img_tokens": num_img_tokens}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def calc_num_image_tokens(self, images) -> list[int]:
        """The ids each image takes in a prompt, from its size alone."""
        images = [images] if isinstance(images, Image.Image) else images
        return [image_token_count(*_as_pil(image, False).size, self.num_crops) for image in images]

    def _crops_of(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int]]:
        """The global view and the crops of one image, and its padded (height, width)."""
        padded = F.normalize(F.to_tensor(self._hd_transform(image)), self.image_mean, self.image_std)
        height, width = padded.shape[1:]
        global_view = torch.nn.functional.interpolate(
            padded.unsqueeze(0), size=(CROP_SIZE, CROP_SIZE), mode="bicubic"
        )
        rows, columns = height // CROP_SIZE, width // CROP_SIZE
        crops = (
            padded.reshape(3, rows, CROP_SIZE, columns, CROP_SIZE)
            .permute(1, 3, 0, 2, 4)
            .reshape(rows * columns, 3, CROP_SIZE, CROP_SIZE)
        )
        return torch.cat([global_view, crops]), (height, width)

    def _hd_transform(self, image: Image.Image) -> Image.Image:
        """Resized onto whole 336-pixel crops, portrait images through their transpose as the public code does."""
        transposed = image.width < image.height
        if transposed:
            image = image.transpose(Image.Transpose.TRANSPOSE)
        new_width, new_height = hd_resize_size(image.width, image.height, self.num_crops)
        image = F.resize(image, [new_height, new_width])
        padded_height = math.ceil(new_height / CROP_SIZE) * CROP_SIZE
        top = (padded_height - new_height) // 2
        image = F.pad(image, [0, top, 0, padded_height - new_height - top], fill=WHITE)
        return image.transpose(Image.Transpose.TRANSPOSE) if transposed else image


def _as_pil(image, convert_rgb: bool) -> Image.Image:
    if isinstance(image, torch.Tensor):
        image = F.to_pil_image(image)
    elif not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    if convert_rgb and ("A" in image.getbands() or image.info.get("transparency") is not None):
        # As transformers' convert_to_rgb, which the public processor calls: transparency onto white.
        image = Image.alpha_composite(Image.new("RGBA", image.size, WHITE + (255,)), image.convert("RGBA"))
    return image.convert("RGB")


def _pad_crops(crops: torch.Tensor, count: int) -> torch.Tensor:
    missing = count - crops.shape[0]
    if missing <= 0:
        return crops
    return torch.cat([crops, crops.new_zeros((missing, *crops.shape[1:]))])
