"""Regional compilation keeps the loop's losses: compiled decoder layers against eager ones."""

from __future__ import annotations

import pytest
import torch

from data.batching import TrainData
from engine.checkpoint import TrainState
from engine.config import TrainConfig
from engine.features.compile import compile_decoder_layers, compiled_decoder_layers
from engine.features.fused_lora import fuse_lora_layers
from engine.loop import train
from engine.optim import create_optimizer
from engine.schedule import create_scheduler
from models.load import load_model

CPU = torch.device("cpu")


def variable_length_data() -> TrainData:
    """Micro-batches of different widths: the compiled graph must serve every length (dynamic=True)."""
    g = torch.Generator().manual_seed(5)
    input_ids, labels = [], []
    for n in range(12):
        prompt, answer = 10 + 3 * n, 4 + n % 5
        ids = torch.randint(3, 2000, (prompt + answer,), generator=g).tolist()
        input_ids.append(ids)
        labels.append([-100] * prompt + ids[prompt:])
    return TrainData(input_ids=input_ids, labels=labels, pad_token_id=2)


def losses(tmp_path, *, compiled: bool, fused: bool, device: torch.device = CPU,
           dtype: torch.dtype = torch.float32) -> list[float]:
    model = load_model("arch:tiny", peft="qlora", compute_dtype=dtype, device=device, seed=0)
    if fused:
        fuse_lora_layers(model)
    if compiled:
        assert compile_decoder_layers(model) == 2
    cfg = TrainConfig(model="arch:tiny", batch_size=2, accum=2, ckpt=True, max_steps=3, warmup=0, optim="adamw", lr=1e-3)
    optimizer = create_optimizer(model, name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = create_scheduler(optimizer, kind="constant", warmup_steps=0, total_steps=3)
    records = train(cfg, model, variable_length_data(), optimizer, scheduler, device=device,
                    run_dir=tmp_path / f"{compiled}-{fused}", start=TrainState(), total_steps=3, is_peft=True)
    return [r["loss"] for r in records]


# The fused-LoRA variant compiles a second graph (16 s on 2 cores): slow; the peft-LoRA one runs by default.
@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["peft-lora", "fused-lora"])
def test_compiled_layers_train_like_eager(tmp_path, fused):
    torch._dynamo.reset()  # compile from scratch: no graph from an earlier test is reused
    eager = losses(tmp_path, compiled=False, fused=fused)
    compiled = losses(tmp_path, compiled=True, fused=fused)
    assert compiled == pytest.approx(eager, rel=1e-5)
    assert eager[0] != eager[-1]  # it trains, so steps 2 and 3 check the updated weights too


def test_layers_are_eager_again_after_the_block():
    """Generation after training (train.py --eval) must not compile the decoding graphs."""
    model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=CPU, seed=0)
    ids = torch.randint(3, 2000, (1, 12))
    with torch.no_grad():
        eager = model(input_ids=ids).logits
        with compiled_decoder_layers(model) as n:
            assert n == 2
        torch._dynamo.reset()
        frames_before = torch._dynamo.utils.counters["frames"]["ok"]
        torch.testing.assert_close(model(input_ids=ids).logits, eager)
    assert torch._dynamo.utils.counters["frames"]["ok"] == frames_before  # nothing was compiled


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_layers_train_like_eager_on_cuda(tmp_path):
    """bf16 on CUDA (inductor's Triton kernels): the losses agree to bf16 precision."""
    torch._dynamo.reset()
    cuda = torch.device("cuda")
    eager = losses(tmp_path, compiled=False, fused=True, device=cuda, dtype=torch.bfloat16)
    compiled = losses(tmp_path, compiled=True, fused=True, device=cuda, dtype=torch.bfloat16)
    assert compiled == pytest.approx(eager, rel=1e-2)


def test_model_without_decoder_layers_is_refused():
    class NoLayers(torch.nn.Module):
        def get_decoder(self):
            return torch.nn.Identity()

        def get_output_embeddings(self):
            return None

    with pytest.raises(ValueError, match="no `layers`"):
        compile_decoder_layers(NoLayers())
