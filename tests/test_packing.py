"""--packing: examples concatenated into rows, positions restarting at each, attention and labels never
crossing an example boundary, the loss normaliser unchanged (data/batching.pack_examples)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data.batching import TrainData, pack_examples
from data.tokenize import IGNORE_INDEX
from engine.loss import compute_loss
from test_engine import perturb_lora_b, tiny_model

CPU = torch.device("cpu")


def labelled_data(n: int = 9, seed: int = 0, vocab: int = 1000, every_position: bool = False) -> TrainData:
    """Examples of 6..40 tokens; a masked prompt and a labelled answer (or every position labelled)."""
    g = torch.Generator().manual_seed(seed)
    input_ids, labels = [], []
    for _ in range(n):
        length = int(torch.randint(6, 41, (1,), generator=g))
        ids = torch.randint(3, vocab, (length,), generator=g).tolist()
        prompt = 0 if every_position else length // 2
        input_ids.append(ids)
        labels.append([IGNORE_INDEX] * prompt + ids[prompt:])
    return TrainData(input_ids, labels, pad_token_id=2)


def token_losses(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-position next-token cross-entropy [B, T-1] in fp32 (0 where the target is -100)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    return F.cross_entropy(logits.transpose(1, 2), batch["labels"][:, 1:], ignore_index=IGNORE_INDEX,
                           reduction="none")


def _membership(data: TrainData, packed: TrainData) -> list[list[tuple[int, int]]]:
    """For each packed row, (example, start) of its members, recovered from the restarting positions."""
    rows = []
    for positions in packed.position_ids:
        starts = [k for k, p in enumerate(positions) if p == 0] + [len(positions)]
        rows.append([(s, e - s) for s, e in zip(starts, starts[1:])])
    return rows


def test_every_example_once_rows_within_length_boundaries_masked():
    data = labelled_data(n=40, every_position=True)
    packed = pack_examples(data, 64, seed=3)
    assert max(packed.lengths) <= 64 and len(packed.input_ids) < len(data.input_ids)
    pieces = sorted(tuple(ids[s:s + n]) for ids, spans in zip(packed.input_ids, _membership(data, packed))
                    for s, n in spans)
    assert pieces == sorted(tuple(ids) for ids in data.input_ids)  # each example exactly once, whole
    for labels, spans in zip(packed.labels, _membership(data, packed)):
        assert all(labels[s] == IGNORE_INDEX for s, _ in spans)  # never a target across a boundary
    # the loss normaliser is the examples' own: every labelled position but each example's first
    assert sum(packed.label_tokens(i) for i in range(len(packed.input_ids))) == \
        sum(data.label_tokens(i) for i in range(len(data.input_ids)))
    assert pack_examples(data, 64, seed=3) == packed  # a function of the seed
    assert pack_examples(data, 64, seed=4) != packed


def test_each_packed_example_has_the_token_losses_it_has_alone():
    torch.manual_seed(0)
    model = tiny_model(peft="qlora")
    perturb_lora_b(model)
    model.eval()
    data = labelled_data(n=9, every_position=True)
    packed = pack_examples(data, 96, seed=0)
    assert max(len(spans) for spans in _membership(data, packed)) >= 3  # rows really hold several examples
    with torch.no_grad():
        together = token_losses(model, packed.micro_batch(list(range(len(packed.input_ids))), CPU))
        checked = 0
        for row, spans in enumerate(_membership(data, packed)):
            for start, n in spans:
                ids = packed.input_ids[row][start:start + n]
                alone = token_losses(model, TrainData([ids], [ids], 2).micro_batch([0], CPU))[0]
                # positions start..start+n-2 predict the example's own tokens 1..n-1
                assert torch.allclose(together[row, start:start + n - 1], alone, atol=1e-5, rtol=0)
                checked += n - 1
        # without the restarting positions the same row is one long sequence: the losses differ
        flat = packed.micro_batch([0], CPU)
        mixed = token_losses(model, {"input_ids": flat["input_ids"], "labels": flat["labels"]})
    assert checked == sum(len(ids) - 1 for ids in data.input_ids)
    assert not torch.allclose(mixed[0], together[0], atol=1e-3)


def test_a_packed_row_gives_the_loss_and_gradients_of_the_padded_batch():
    torch.manual_seed(0)
    data = labelled_data(n=5)
    packed = pack_examples(data, 256, seed=0)
    assert len(packed.input_ids) == 1

    def loss_and_grads(batch):
        model = tiny_model(peft="lora")
        perturb_lora_b(model)
        loss = compute_loss(model, batch, label_only=True)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    padded_loss, padded_grads = loss_and_grads(data.micro_batch(list(range(5)), CPU))
    packed_loss, packed_grads = loss_and_grads(packed.micro_batch([0], CPU))
    assert torch.allclose(packed_loss, padded_loss, rtol=1e-5)
    for name, grad in padded_grads.items():
        assert torch.allclose(packed_grads[name], grad, rtol=1e-4, atol=1e-6), name
