"""The benchmark: synthetic data shapes, argument checks, and an end-to-end run of both systems on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from data.synthetic import ANSWER_TOKENS, FIRST_ORDINARY_ID, PROMPT_TOKENS, synthetic_examples
from engine.tools.bench import (_SPEED, BenchArgs, BenchError, format_table, main, mfu, model_facts, ours_config,
                                parse_args, summarise)
from models.load import load_model
from models.presets import PARAMETER_COUNTS, PRESETS


def prompt_length(labels: list[int]) -> int:
    return next(i for i, t in enumerate(labels) if t != -100)


def test_synthetic_shapes_and_masking():
    input_ids, labels = synthetic_examples(3000, vocab_size=49152, end_id=2, seed=7)
    prompts = [prompt_length(y) for y in labels]
    answers = [len(ids) - p for ids, p in zip(input_ids, prompts)]
    # Every length in its inclusive range, and with 3000 draws both ends of each range occur.
    assert (min(prompts), max(prompts)) == PROMPT_TOKENS
    assert (min(answers), max(answers)) == ANSWER_TOKENS
    for ids, y, p in zip(input_ids, labels, prompts):
        assert len(ids) == len(y)
        assert y[:p] == [-100] * p  # the prompt is masked ...
        assert y[p:] == ids[p:]  # ... the answer is labelled with its own ids
        assert ids[-1] == 2  # and ends with the end-of-turn token
        assert all(FIRST_ORDINARY_ID <= t < 49152 for t in ids[:-1])


def test_synthetic_is_seeded():
    a = synthetic_examples(50, vocab_size=1000, end_id=2, seed=1)
    assert a == synthetic_examples(50, vocab_size=1000, end_id=2, seed=1)
    assert a != synthetic_examples(50, vocab_size=1000, end_id=2, seed=2)
    ids, labels = synthetic_examples(40, vocab_size=1000, end_id=5, seed=0, prompt_tokens=(3, 3), answer_tokens=(2, 4))
    assert {prompt_length(y) for y in labels} == {3}
    assert {len(i) - 3 for i in ids} == {2, 3, 4}


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_examples=0), "num_examples"),
    (dict(vocab_size=50), "vocabulary"),
    (dict(end_id=1000), "outside the vocabulary"),
    (dict(prompt_tokens=(10, 5)), "prompt length range"),
])
def test_synthetic_rejects_bad_arguments(kwargs, message):
    arguments = dict(num_examples=4, vocab_size=1000, end_id=2) | kwargs
    with pytest.raises(ValueError, match=message):
        synthetic_examples(**arguments)


def test_ours_flags_may_not_change_the_shared_setup():
    args = BenchArgs(model="arch:tiny")
    for flags in ("--batch-size 8", "--lora-r 4", "--ckpt", "--optim adamw", "--seed 3", "--max-length 64"):
        with pytest.raises(BenchError, match="may not change"):
            ours_config(args, f"ours {flags}")
    with pytest.raises(BenchError, match="may not change --sample-rows"):  # other prompts than hf's
        ours_config(BenchArgs(model="arch:tiny", data="bundled"), "ours --sample-rows 2")
    with pytest.raises(BenchError, match="unrecognized arguments"):
        ours_config(args, "ours --no-such-flag")
    cfg, switches = ours_config(BenchArgs(model="arch:tiny", ours_flags="--group-by-length"),
                                "ours --no-loss-on-labels-only --fused-lora")
    assert cfg.group_by_length and not cfg.loss_on_labels_only
    assert switches == {"fused_lora": True, "compile_layers": False, "cuda_graphs": False, "chunked_loss": False,
                        "offload_embeddings": False, "expandable_segments": False,
                        "cublas_workspace_mib": None}
    assert (cfg.batch_size, cfg.accum, cfg.max_steps) == (4, 4, 12)  # the bench's defaults, warm-up included
    packed, _ = ours_config(BenchArgs(model="arch:tiny", data="synthetic", max_length=2048), "ours --packing")
    assert packed.packing and packed.max_length == 2048  # rows of --max-length on synthetic data too


def test_parse_args_systems_and_errors():
    with pytest.raises(BenchError, match="--memory-cap-gib must be > 0"):
        parse_args(["--memory-cap-gib", "0", "--device", "cpu"])
    with pytest.raises(BenchError, match="--memory-cap-gib caps the CUDA allocator: it needs a CUDA device"):
        parse_args(["--memory-cap-gib", "24", "--device", "cpu"])
    with pytest.raises(BenchError, match="64 examples are fewer than"):
        parse_args(["--data", "dummy", "--batch-size", "1", "--accum", "1", "--steps", "70", "--device", "cpu"])
    with pytest.raises(BenchError, match="--warmup-steps must be >= 0"):
        parse_args(["--warmup-steps", "-1", "--device", "cpu"])
    args, _ = parse_args(["--model", "arch:tiny", "--ladder", "--device", "cpu"])
    assert args.systems[0] == "hf" and args.systems[2] == "ours"
    assert not any("--cuda-graphs" in s for s in args.systems)  # CUDA only: the CPU ladder stops before it
    assert all(s.startswith("ours") for s in args.systems[1:])
    for argv, message in ((["--systems", "trainer"], "unknown system"), (["--systems", "hf --foo"], "takes no flags"),
                          (["--steps", "0"], "--steps must be >= 1"), (["--ladder", "--systems", "hf"], "either"),
                          (["--num-examples", "10"], "fewer than"), (["--model", "arch:nope"], "unknown architecture")):
        with pytest.raises(BenchError, match=message):
            parse_args(argv)


def test_model_facts_count_unpacked_4bit_weights():
    model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device=torch.device("cpu"), seed=0)
    facts = model_facts(model)
    preset = PRESETS["tiny"]
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    embedding = preset["vocab_size"] * preset["hidden_size"]  # tied: lm_head is the same matrix
    assert facts == {"params_nonembed": PARAMETER_COUNTS["tiny"] - embedding + lora,
                     "layers": preset["num_hidden_layers"], "heads": preset["num_attention_heads"],
                     "head_dim": preset["head_dim"]}


def test_bench_end_to_end_on_cpu(tmp_path):
    """Both systems train arch:tiny for 1 warm-up + 2 timed steps, each in its own process."""
    out = tmp_path / "bench"
    status = main(["--model", "arch:tiny", "--data", "synthetic", "--num-examples", "48", "--batch-size", "2",
                   "--accum", "2", "--ckpt", "--steps", "2", "--warmup-steps", "1", "--device", "cpu",
                   "--systems", "hf", "ours", "ours --group-by-length --fused-lora", "--out", str(out)])
    assert status == 0
    report = json.loads((out / "bench.json").read_text())
    rows = {row["system"]: row for row in report["summary"]}
    hf, ours = rows["hf"], rows["ours"]
    for row in rows.values():
        assert row["tokens_per_s"] > 0 and row["step_s"] > 0 and row["wall_s"] > 0 and row["cpu_s"] > 0
        assert row["peak_rss"] > 0 and row["mfu"] > 0
        assert len(row["losses"]) == 3
        assert row["tokens_per_s"] == pytest.approx(row["tokens"] / row["wall_s"])
    # Same model, same examples in the same order: the same tokens, and the same first loss.
    assert ours["tokens"] == hf["tokens"] and ours["sum_sq_lengths"] == hf["sum_sq_lengths"]
    assert ours["losses"][0] == pytest.approx(hf["losses"][0], abs=1e-4)
    assert ours["vs_hf_tokens_per_s"] == pytest.approx(ours["tokens_per_s"] / hf["tokens_per_s"])
    assert rows["ours --group-by-length --fused-lora"]["switches"] == {
        "fused_lora": True, "compile_layers": False, "cuda_graphs": False, "chunked_loss": False,
        "offload_embeddings": False, "expandable_segments": False, "cublas_workspace_mib": None}
    expected_mfu = (6 * ours["params_nonembed"] * ours["tokens"] + 12 * ours["layers"] * ours["heads"]
                    * ours["head_dim"] * ours["sum_sq_lengths"]) / ours["wall_s"] / 989e12
    assert mfu(ours, 989.0) == pytest.approx(expected_mfu) and ours["mfu"] == pytest.approx(expected_mfu)
    markdown = (out / "bench.md").read_text()
    assert "| hf " in markdown and "| ours --group-by-length --fused-lora " in markdown and "MFU =" in markdown


def test_dummy_sequences_timed_from_the_first_step(tmp_path):
    """--data dummy --warmup-steps 0, as a max-context run: one step of one fixed-length sequence per system,
    every position labelled, timed from the start of training; the same tokens and first loss for both."""
    out = tmp_path / "bench"
    assert main(["--model", "arch:tiny", "--data", "dummy", "--max-length", "96", "--batch-size", "1", "--accum", "1",
                 "--ckpt", "--steps", "1", "--warmup-steps", "0", "--device", "cpu", "--systems", "hf", "ours",
                 "--out", str(out)]) == 0
    rows = {row["system"]: row for row in json.loads((out / "bench.json").read_text())["summary"]}
    for row in rows.values():
        assert row["tokens"] == 96 and row["label_tokens"] == 95 and row["examples"] == 1
        assert len(row["losses"]) == 1 and len(row["step_times"]) == 1 and row["wall_s"] > 0
    assert rows["ours"]["losses"][0] == pytest.approx(rows["hf"]["losses"][0], abs=1e-4)


def test_summary_takes_each_systems_fastest_run_and_keeps_failures():
    def run(system, tokens_per_s, reserved):
        return {"system": system, "tokens_per_s": tokens_per_s, "peak_reserved": reserved, "peak_allocated": None,
                "device_used": None, "tokens": 1000, "wall_s": 1000 / tokens_per_s, "params_nonembed": 10,
                "layers": 1, "heads": 1, "head_dim": 1, "sum_sq_lengths": 100}

    runs = [run("hf", 100.0, 8), run("ours", 300.0, 2), run("hf", 120.0, 8), run("ours", 240.0, 2),
            run("hf", 90.0, 8), run("ours", 250.0, 2), {"system": "ours --compile-layers", "error": "exit status 1"}]
    rows = {r["system"]: r for r in summarise(runs, ["hf", "ours", "ours --compile-layers"], 989.0)}
    assert rows["hf"]["tokens_per_s"] == 120.0 and rows["hf"]["runs"] == 3  # the fastest of 100, 120, 90
    assert rows["ours"]["tokens_per_s"] == 300.0
    assert rows["ours"]["vs_hf_tokens_per_s"] == pytest.approx(2.5)
    assert rows["ours"]["vs_hf_peak_reserved"] == pytest.approx(0.25)
    assert "vs_hf_peak_allocated" not in rows["ours"]  # no figure on either side: no ratio
    assert rows["ours --compile-layers"] == {"system": "ours --compile-layers", "error": "exit status 1"}
    assert "failed: exit status 1" in format_table([rows["ours --compile-layers"]])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bench_on_cuda(tmp_path):
    """Both systems on the GPU: allocator peaks and device memory are read for each."""
    out = tmp_path / "bench"
    assert main(["--model", "arch:tiny", "--num-examples", "64", "--batch-size", "4", "--accum", "2", "--ckpt",
                 "--steps", "2", "--warmup-steps", "2", "--device", "cuda", "--ladder", "--out", str(out)]) == 0
    rows = {row["system"]: row for row in json.loads((out / "bench.json").read_text())["summary"]}
    for row in rows.values():
        assert row["tokens_per_s"] > 0 and not row["device"].startswith("cpu")
        assert 0 < row["peak_allocated"] <= row["peak_reserved"] <= row["device_used"]
    assert rows["ours"]["losses"][0] == pytest.approx(rows["hf"]["losses"][0], rel=2e-2)  # bf16 vs autocast
    eager = rows["ours --group-by-length --fused-lora --chunked-loss"]
    graphs = rows[f"ours {_SPEED}"]
    assert graphs["switches"]["cuda_graphs"] and graphs["losses"] == pytest.approx(eager["losses"], rel=2e-2)
    offloaded = rows[f"ours {_SPEED} --expandable-segments --offload-embeddings"]
    assert offloaded["switches"]["offload_embeddings"] and offloaded["losses"] == pytest.approx(eager["losses"], rel=2e-2)
