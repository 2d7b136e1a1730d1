"""The libraries' output a user cannot act on, filtered from what ``phi3v-train`` prints.

Filtered while a command runs (and restored after it):

- transformers' warnings and notes (e.g. that it aligned the model's special tokens with the tokenizer's)
  and its "Loading weights" / "Writing model shards" bars; its errors stay, and so do the Hub's download bars;
- deprecations the libraries raise about their own internals (FutureWarning, DeprecationWarning);
- DeepSpeed's "Setting accelerator to CPU" (the run's summary says where it trains), accelerate's note that
  it uses DeepSpeed's gradient-accumulation value (phi3v-train computed that value) and torch's "No CUDA
  runtime is found" on a machine without a GPU;
- bitsandbytes' missing optional CPU 4-bit kernel, except in QLoRA runs, the only ones with 4-bit matmuls.
  (bitsandbytes looks for it in the `kernels` package; were that installed, it would download the kernel
  from the Hub at import, which HF_HUB_OFFLINE=1 stops.)

Every other warning, and every error, is shown.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

LIBRARY_MODULES = r"(transformers|peft|accelerate|torch|deepspeed|bitsandbytes)(\.|$)"
# Logger name -> the start of each message of it that is dropped.
NOTICES = {
    "DeepSpeed": ("Setting accelerator to CPU",),
    "accelerate.accelerator": ("Gradient accumulation steps mismatch",),
    "torch.utils.cpp_extension": ("No CUDA runtime is found",),
}
MISSING_4BIT_KERNEL = ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community")


@contextmanager
def quiet_libraries(quantizing: bool) -> Iterator[None]:
    """Run the block with the libraries' noise filtered; ``quantizing``: a QLoRA run keeps bitsandbytes' notes."""
    notices = dict(NOTICES)
    if not quantizing:
        notices[MISSING_4BIT_KERNEL[0]] = (MISSING_4BIT_KERNEL[1],)
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
        for name, prefixes in notices.items():
            stack.enter_context(_dropped(name, prefixes))
        stack.enter_context(_transformers_errors_only())
        yield


@contextmanager
def _dropped(logger_name: str, prefixes: tuple[str, ...]) -> Iterator[None]:
    # A filter on the logger itself: DeepSpeed's logger does not propagate, so a handler filter would miss it.
    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(prefixes)

    logger = logging.getLogger(logger_name)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _disabled_bar(factory, args: tuple, kwargs: dict):
    return factory(*args, **{**kwargs, "disable": True})


@contextmanager
def _transformers_errors_only() -> Iterator[None]:
    # transformers imported without torch warns that models are unavailable; every command needs torch, so
    # its absence is reported first, as the one thing to install.
    import torch  # noqa: F401
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    hook = transformers_logging.set_tqdm_hook(_disabled_bar)
    try:
        yield
    finally:
        transformers_logging.set_tqdm_hook(hook)
        transformers_logging.set_verbosity(verbosity)
