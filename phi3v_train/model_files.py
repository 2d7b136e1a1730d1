"""Where a model's small files are: a local folder, or the Hugging Face cache for a Hub id.

Light on purpose (no torch model code, peft or bitsandbytes): ``--print-config`` and the data checks
that run before a model loads use it without loading the trainer's heavy modules.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import is_offline_mode
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers.utils import cached_file

from phi3v_data.errors import ModelFilesError

# What PromptBuilder.from_model_dir reads: the tokenizer, and the chat template in the tokenizer's config.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# The files a model's weights are saved in (sharded or not), as from_pretrained looks for them; an
# adapter's adapter_model.safetensors is not one.
WEIGHT_FILES = ("model*.safetensors", "pytorch_model*.bin")
ADAPTER_CONFIG = "adapter_config.json"


def model_files_dir(model: str) -> Path:
    """The local folder holding the model's tokenizer files (the Hub cache's snapshot for a model id)."""
    folder = Path(model)
    if folder.is_dir():
        return folder
    try:
        # Each file is fetched (or found in the cache) on its own; all land in one snapshot folder.
        paths = [Path(cached_file(model, name)) for name in TOKENIZER_FILES]
    except OSError as error:
        raise ModelFilesError(_hub_failure(model, "find the tokenizer of", error)) from None
    return paths[0].parent


def _hub_failure(model: str, action: str, error: OSError) -> str:
    """Why ``model`` could not be used: not a folder and not a usable Hub id, or a folder missing a file."""
    path = Path(model)
    if path.is_dir():
        return f"cannot {action} {model}: {error}"
    if path.exists():
        return f"--model {model} is a file: point it at the model's folder (or give a Hugging Face model id)"
    try:
        validate_repo_id(model)
    except HFValidationError:
        return (
            f"--model {model} is neither a local folder nor a valid Hugging Face model id "
            "(such as microsoft/Phi-3.5-vision-instruct)"
        )
    # transformers' own message spans lines and points at its docs; its first line says what failed.
    reason = str(error).splitlines()[0]
    if is_offline_mode():
        return (
            f"--model {model} is not a local folder, and with HF_HUB_OFFLINE=1 a Hugging Face model id must "
            f"already be in the local cache ({reason})"
        )
    return f"--model {model} is not a local folder, and the Hugging Face Hub did not provide it ({reason})"


def require_model_weights(model: str | Path, option: str = "--model") -> None:
    """Refuse a local folder without weights (a tokenizer-only folder, an adapter) in one sentence, before
    anything slow; a Hub id is checked when it loads."""
    folder = Path(model)
    if not folder.is_dir() or any(any(folder.glob(pattern)) for pattern in WEIGHT_FILES):
        return
    if (folder / ADAPTER_CONFIG).is_file():
        raise ModelFilesError(
            f"{option} {model} is a LoRA adapter, not a model: train on its base model (the "
            f"base_model_name_or_path in its {ADAPTER_CONFIG}), or evaluate it with `phi3v-train eval --model {model}`"
        )
    raise ModelFilesError(
        f"{option} {model} has no model weights (no model*.safetensors file): it holds only "
        f"{_holds(folder)}; pass a model's folder with its weights, or a Hugging Face id such as "
        "microsoft/Phi-3.5-vision-instruct"
    )


def _holds(folder: Path) -> str:
    has_tokenizer = all((folder / name).is_file() for name in TOKENIZER_FILES)
    has_config = (folder / "config.json").is_file()
    if has_tokenizer and has_config:
        return "the configuration and the tokenizer"
    if has_tokenizer:
        return "a tokenizer"
    return "a configuration" if has_config else "other files"
