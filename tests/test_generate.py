"""Generation: SQL extraction from model answers, the prompt equal to the training prompt, the greedy
loop (left padding, stop tokens, order) against a scripted model and against transformers' own
greedy `generate`, mode restoration, and the tiny and bundled models end to end."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from data.prompts import sql_messages
from data.tokenize import IGNORE_INDEX, tokenize_conversation
from eval.generate import (EMPTY_SQL, extract_sql, generate, greedy_decode, inference_mode, prompt_token_ids,
                           stop_token_ids)
from models.load import BUNDLED_NAME, load_model, load_tokenizer

IM_END = 2  # SmolLM2's <|im_end|>: end of turn, eos and pad


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("arch:tiny")  # the bundled SmolLM2 tokenizer


# ----------------------------------------------------------------------------- extract_sql

@pytest.mark.parametrize("answer, sql", [
    ("SELECT name FROM singer", "SELECT name FROM singer"),
    ("```sql\nSELECT name\nFROM singer\nWHERE age > 30;\n```\nThis query lists the names.",
     "SELECT name FROM singer WHERE age > 30"),
    ("```sql SELECT count(*) FROM t```", "SELECT count(*) FROM t"),
    ("```\nSELECT 1\n```", "SELECT 1"),
    ("```sql\nSELECT x FROM t", "SELECT x FROM t"),  # unclosed fence (cut by max_new_tokens)
    ("SQL: SELECT name FROM singer;", "SELECT name FROM singer"),
    ("Answer: SQL query: select a from t", "select a from t"),
    ("Here is the query:\nSELECT count(*)\nFROM t -- every row\nWHERE x = 'a  b';\n\nExplanation: it counts.",
     "SELECT count(*) FROM t WHERE x = 'a  b'"),
    ("SELECT a,\n    b\nFROM t\nThe result has two columns.", "SELECT a, b FROM t"),
    ("SELECT a FROM t; This returns every a.", "SELECT a FROM t"),
    ("SELECT a FROM t\n\nSELECT b FROM t", "SELECT a FROM t"),  # a paragraph break ends the answer
    ("SELECT \"it;s\" FROM t; -- done", "SELECT \"it;s\" FROM t"),
    ("SELECT a\nFROM t\nWHERE\n  a = 1", "SELECT a FROM t WHERE a = 1"),
    ("SELECT a FROM t WHERE b = 'x\ny'", "SELECT a FROM t WHERE b = 'x y'"),
])
def test_extract_sql(answer: str, sql: str) -> None:
    assert extract_sql(answer) == sql


def test_extract_sql_keeps_a_second_statement_so_it_is_scored_wrong() -> None:
    assert extract_sql("SELECT 1;\nDROP TABLE singer;") == "SELECT 1; DROP TABLE singer"


@pytest.mark.parametrize("answer", ["", "   ", "\n\n", "```sql\n```", "-- nothing"])
def test_empty_answer_becomes_the_placeholder(answer: str) -> None:
    assert extract_sql(answer) == EMPTY_SQL


def test_answer_without_sql_is_kept_for_the_mistakes_file() -> None:
    assert extract_sql("To answer, use the CREATE TABLE statement.\nMore prose.") == \
        "To answer, use the CREATE TABLE statement."


def test_extracted_sql_is_always_one_line() -> None:
    answers = ["SELECT a\n\tFROM t", "```sql\nSELECT\r\n a\r\nFROM t\n```", "SELECT 'a\tb'\nFROM t"]
    for answer in answers:
        sql = extract_sql(answer)
        assert "\n" not in sql and "\r" not in sql and "\t" not in sql


# ----------------------------------------------------------------------------- prompt

def test_generation_prompt_is_the_training_prompt(tokenizer) -> None:
    messages = sql_messages("How many singers are there?", "CREATE TABLE singer (id INTEGER)",
                            "SELECT count(*) FROM singer")
    prompt = prompt_token_ids(messages, tokenizer)  # the answer is dropped
    input_ids, labels = tokenize_conversation(messages, tokenizer)
    assert input_ids[:len(prompt)] == prompt
    # exactly the masked prefix: the first learned token is the first generated one
    assert labels[:len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt)] != IGNORE_INDEX
    assert prompt_token_ids(messages[:-1], tokenizer) == prompt
    assert stop_token_ids(tokenizer) == [IM_END]


# ----------------------------------------------------------------------------- the decoding loop

class ScriptedLM(nn.Module):
    """Answers each prompt (looked up by its unpadded token ids) with a fixed token sequence, then
    <|im_end|>; records the position ids of every prefill row to check the padding arithmetic."""

    def __init__(self, answers: dict[tuple[int, ...], list[int]], vocab: int = 49152):
        super().__init__()
        self.embed = nn.Embedding(vocab, 1)
        self.config = SimpleNamespace(use_cache=False)
        self.answers, self.vocab, self.prefill_positions = answers, vocab, []

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache, logits_to_keep):
        assert use_cache and logits_to_keep == 1 and not self.training and not torch.is_grad_enabled()
        if past_key_values is None:
            prompts = [tuple(row[mask == 1].tolist()) for row, mask in zip(input_ids, attention_mask)]
            self.prefill_positions += [pos[mask == 1].tolist() for pos, mask in zip(position_ids, attention_mask)]
            past_key_values = {"prompts": prompts, "generated": [[] for _ in prompts], "width": input_ids.shape[1]}
        else:
            # one new token per row, at the position right after its prompt and earlier tokens
            generated = past_key_values["generated"]
            assert input_ids.shape[1] == 1
            assert attention_mask.shape[1] == past_key_values["width"] + len(generated[0]) + 1
            assert position_ids[:, 0].tolist() == [len(p) + len(g) for p, g in
                                                   zip(past_key_values["prompts"], generated)]
            for row, token in zip(generated, input_ids[:, 0].tolist()):
                row.append(token)
        logits = torch.full((len(input_ids), 1, self.vocab), -1e4)
        for row, (prompt, done) in enumerate(zip(past_key_values["prompts"], past_key_values["generated"])):
            answer = self.answers[prompt] + [IM_END]
            logits[row, 0, answer[min(len(done), len(answer) - 1)]] = 0.0
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def _conversations(n: int) -> list[list[dict]]:
    # questions of different lengths, so batches need padding
    return [sql_messages("How many singers" + " really" * i + "?", None, "x") for i in range(n)]


def test_scripted_answers_come_back_in_input_order(tokenizer) -> None:
    conversations = _conversations(7)
    sqls = [f"SELECT {i} FROM singer" + " WHERE 1 = 1" * (i % 3) for i in range(7)]
    answers = {tuple(prompt_token_ids(c, tokenizer)): tokenizer(s, add_special_tokens=False)["input_ids"]
               for c, s in zip(conversations, sqls)}
    model = ScriptedLM(answers)
    outputs = generate(model, tokenizer, conversations, batch_size=3, max_new_tokens=64)
    assert [o.text for o in outputs] == sqls
    assert all(o.stopped for o in outputs)
    assert [o.num_tokens for o in outputs] == [len(answers[tuple(prompt_token_ids(c, tokenizer))]) + 1
                                              for c in conversations]
    # left padding: every prompt's real tokens sit at positions 0..n-1 whatever the batch's width
    assert sorted(len(p) for p in model.prefill_positions) == sorted(len(k) for k in answers)
    assert all(p == list(range(len(p))) for p in model.prefill_positions)


def test_max_new_tokens_cuts_a_long_answer(tokenizer) -> None:
    conversations = _conversations(2)
    long_ids = tokenizer("SELECT a, b, c, d, e, f, g FROM t", add_special_tokens=False)["input_ids"]
    answers = {tuple(prompt_token_ids(conversations[0], tokenizer)): long_ids,
               tuple(prompt_token_ids(conversations[1], tokenizer)): long_ids[:2]}
    outputs = generate(ScriptedLM(answers), tokenizer, conversations, batch_size=2, max_new_tokens=5)
    assert (outputs[0].stopped, outputs[0].num_tokens) == (False, 5)
    assert outputs[0].text == tokenizer.decode(long_ids[:5])
    assert (outputs[1].stopped, outputs[1].num_tokens) == (True, 3)


def test_generation_restores_training_mode_and_use_cache(tokenizer) -> None:
    model = load_model("arch:tiny", peft="qlora", compute_dtype=torch.float32, device="cpu")
    assert model.training and model.config.use_cache is False
    outputs = generate(model, tokenizer, _conversations(3), batch_size=2, max_new_tokens=4)
    assert len(outputs) == 3 and all(1 <= o.num_tokens <= 4 for o in outputs)
    assert model.training and model.config.use_cache is False
    assert torch.is_grad_enabled()


def test_greedy_loop_matches_transformers_generate(tokenizer) -> None:
    """Same padded batch, same greedy argmax: token-for-token what `model.generate` produces."""
    model = load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device="cpu", seed=3)
    prompts = [prompt_token_ids(c, tokenizer) for c in _conversations(3)]
    ours = None
    with inference_mode(model):
        ours = greedy_decode(model, prompts, pad_token_id=IM_END, stop_ids=[IM_END], max_new_tokens=12)
        width = max(map(len, prompts))
        input_ids = torch.tensor([[IM_END] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        theirs = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False, num_beams=1,
                                max_new_tokens=12, eos_token_id=IM_END, pad_token_id=IM_END)
    for row, ids in enumerate(ours):
        expected = theirs[row, width:].tolist()
        expected = expected[:expected.index(IM_END) + 1] if IM_END in expected else expected
        assert ids == expected


def test_tiny_model_gives_one_prediction_per_example(tokenizer) -> None:
    model = load_model("arch:tiny", peft="full", compute_dtype=torch.float32, device="cpu")
    conversations = _conversations(5)
    outputs = generate(model, tokenizer, conversations, batch_size=2, max_new_tokens=6)
    assert len(outputs) == 5
    assert all(1 <= o.num_tokens <= 6 and o.stopped == (o.num_tokens < 6 or None) or o.num_tokens == 6
               for o in outputs)
    assert len([extract_sql(o.text) for o in outputs]) == 5


def test_bad_arguments_are_one_line_errors(tokenizer) -> None:
    model = ScriptedLM({})
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        generate(model, tokenizer, _conversations(1), batch_size=0)
    with pytest.raises(ValueError, match="max_new_tokens must be at least 1"):
        generate(model, tokenizer, _conversations(1), max_new_tokens=0)
    with pytest.raises(ValueError, match="beyond the model's 100-token vocabulary"):
        generate(ScriptedLM({}, vocab=100), tokenizer, _conversations(1))


# ----------------------------------------------------------------------------- the bundled model

def test_bundled_model_batched_equals_one_by_one() -> None:
    """SmolLM2-135M-Instruct: padding a prompt in a batch must not change its greedy answer."""
    tokenizer = load_tokenizer(BUNDLED_NAME)
    model = load_model(BUNDLED_NAME, peft="full", compute_dtype=torch.float32, device="cpu")
    conversations = [sql_messages(q, "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)", None)
                     for q in ("How many singers are there?", "List the names of singers older than 30, oldest first.",
                               "What is the average age?")]
    batched = generate(model, tokenizer, conversations, batch_size=3, max_new_tokens=16)
    alone = generate(model, tokenizer, conversations, batch_size=1, max_new_tokens=16)
    assert [o.text for o in batched] == [o.text for o in alone]
    assert all(o.num_tokens >= 1 for o in batched)
