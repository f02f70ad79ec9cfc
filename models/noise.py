"""Messages the libraries under models/ print on every command that say nothing about the run: silenced
one by one, by logger and exact text, never by category or module wholesale.

  bitsandbytes  on CPUs with AVX512-BF16, importing it tries to fetch a CPU gemm kernel from the hub
                (`kernels` package) and logs "Failed to load CPU gemm_4bit_forward ..." when it cannot.
                That kernel serves the AVX512-BF16 inference path, which models/quantize.py switches off
                (`support_avx512bf16_for_cpu = False`): nothing here would use it.
  transformers  peft reads `model.is_gradient_checkpointing` when it wraps a model, which transformers
                deprecated in favour of `is_activation_checkpointing`: a FutureWarning about peft's code,
                printed by every command that loads an adapter or adds LoRA.

Every other warning of these libraries, and every warning of the same category with another text, is
left as it is (tests/test_noise.py checks both). Installed when the `models` package is imported
(models/__init__.py), which happens before anything in this project imports bitsandbytes or peft.
"""

from __future__ import annotations

import logging
import warnings

BNB_CPU_OPS_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNEL_MESSAGE = "Failed to load CPU gemm_4bit_forward from kernels-community"
# (category, regular expression matched at the start of the message, module that warns)
KNOWN_WARNINGS = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
)


class _DropMessage(logging.Filter):
    """Drops the records of one logger whose format string starts with `prefix`."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def silence_known_noise() -> None:
    """Install the filters above (idempotent: installing twice changes nothing)."""
    logger = logging.getLogger(BNB_CPU_OPS_LOGGER)
    if not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(BNB_KERNEL_MESSAGE))
    for category, message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
