"""Label masking: only the final answer and the end-of-turn token after it are learned, for every
data format and for several chat-template families; over-long examples are dropped, not cut.

Templates are set on copies of the bundled SmolLM2 tokenizer, with the special tokens each family
needs added as special tokens, so no tokenizer is downloaded."""

from __future__ import annotations

import copy

import pytest
from test_formats import CHAT_RECORDS, write_all_formats

from data.formats import load_examples
from data.prompts import sql_messages
from data.tokenize import (
    IGNORE_INDEX,
    end_of_turn_token_id,
    render_prompt,
    tokenize_conversation,
    tokenize_dataset,
)
from models.bundled import bundled_model_dir

LLAMA3 = (
    "{% for message in messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Phi-3's template from seed 002: <|end|> closes each turn, and the conversation ends with eos.
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Zephyr-like: every turn closed by eos (</s>), as in Mistral-family chat models.
ZEPHYR = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
# Seed 004's Korean question/answer layout: plain text, no end token after the answer, and a
# generation prompt ending in a space (so " SELECT" would straddle the prompt/answer boundary).
PLAIN_KO = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '### 답변: ' + message['content'] + '\n\n' }}"
    "{% else %}{{ '### 질문: ' + message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### 답변: ' }}{% endif %}"
)
# name -> (chat template or None for the fallback, special tokens to add, end-of-turn token text)
TEMPLATES = {
    "chatml": ("own", {}, "<|im_end|>"),
    "llama3": (LLAMA3, {"bos_token": "<|begin_of_text|>",
                        "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}, "<|eot_id|>"),
    "phi3": (PHI3, {"eos_token": "<|endoftext|>",
                    "additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]}, "<|end|>"),
    "zephyr": (ZEPHYR, {"eos_token": "</s>"}, "</s>"),
    "fallback": (None, {}, "<|im_end|>"),  # no chat template: "### Role:" text, eos after answers
    "plain-ko": (PLAIN_KO, {}, "<|im_end|>"),  # no end token written: eos appended and learned
}


@pytest.fixture(scope="module")
def base_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_dir())


def with_template(base, name: str):
    template, special, _ = TEMPLATES[name]
    tokenizer = copy.deepcopy(base)
    if special:
        tokenizer.add_special_tokens(special)
    if template != "own":
        tokenizer.chat_template = template
    return tokenizer


@pytest.fixture(scope="module")
def formats(tmp_path_factory) -> dict:
    kwargs = write_all_formats(tmp_path_factory.mktemp("formats"))
    return {name: load_examples(**kw) for name, kw in kwargs.items()}


def learned(input_ids: list[int], labels: list[int]) -> list[int]:
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(input_ids, labels))
    return [label for label in labels if label != IGNORE_INDEX]


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_only_the_answer_and_its_end_of_turn_token_are_learned(base_tokenizer, formats, template):
    tokenizer = with_template(base_tokenizer, template)
    eot_text = TEMPLATES[template][2]
    eot_id = tokenizer.convert_tokens_to_ids(eot_text)
    assert end_of_turn_token_id(tokenizer) == eot_id
    checked = 0
    for name, data in formats.items():
        for row in data:
            input_ids, labels = tokenize_conversation(row["messages"], tokenizer)
            assert len(input_ids) == len(labels)
            target = learned(input_ids, labels)
            assert tokenizer.decode(target) == row["answer"] + eot_text, (name, template)
            # Token for token: the answer as tokenised alone, then the end-of-turn token.
            assert target == tokenizer(row["answer"], add_special_tokens=False)["input_ids"] + [eot_id]
            # The tokens before the answer are exactly what generation is prompted with.
            first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
            prompt_ids = tokenizer(render_prompt(row["messages"][:-1], tokenizer), add_special_tokens=False)["input_ids"]
            assert input_ids[:first] == prompt_ids, (name, template)
            # Learned tokens are contiguous, ending with the end-of-turn token; after it all is masked.
            last = first + len(target) - 1
            assert input_ids[last] == eot_id and all(label == IGNORE_INDEX for label in labels[last + 1:])
            checked += 1
    assert checked == 4 + 3 + 2 + 2 + 2


def test_chatml_render_and_trailing_newline(base_tokenizer):
    messages = sql_messages("How many singers are there?", "CREATE TABLE singer (singer_id INTEGER, name TEXT)",
                            "SELECT count(*) FROM singer")
    input_ids, labels = tokenize_conversation(messages, base_tokenizer)
    assert base_tokenizer.decode(input_ids).endswith("<|im_start|>assistant\nSELECT count(*) FROM singer<|im_end|>\n")
    # The template's newline after <|im_end|> is input but not learned.
    assert base_tokenizer.decode(input_ids[-1:]) == "\n" and labels[-1] == IGNORE_INDEX
    assert labels[-2] == input_ids[-2] == 2


def test_earlier_assistant_turns_are_masked(base_tokenizer):
    input_ids, labels = tokenize_conversation(CHAT_RECORDS[1]["messages"], base_tokenizer)
    assert base_tokenizer.decode(learned(input_ids, labels)) == CHAT_RECORDS[1]["messages"][-1]["content"] + "<|im_end|>"
    assert input_ids.count(2) == 5  # system (the template's default), user, assistant, user, assistant
    assert sum(1 for t, label in zip(input_ids, labels) if t == 2 and label != IGNORE_INDEX) == 1


def test_generation_prompt_without_newline_learns_the_newline(base_tokenizer):
    """Zephyr's real template prompts with '<|assistant|>' and writes '<|assistant|>\\n' + answer:
    the model must produce that newline itself, so it is learned with the answer."""
    tokenizer = with_template(base_tokenizer, "zephyr")
    tokenizer.chat_template = ZEPHYR.replace("{{ '<|assistant|>\n' }}", "{{ '<|assistant|>' }}")
    input_ids, labels = tokenize_conversation(CHAT_RECORDS[0]["messages"], tokenizer)
    assert tokenizer.decode(learned(input_ids, labels)) == "\n" + CHAT_RECORDS[0]["messages"][-1]["content"] + "</s>"


def test_template_that_breaks_the_prompt_prefix_is_refused(base_tokenizer):
    tokenizer = copy.deepcopy(base_tokenizer)
    # The generation prompt says "Answer:", the rendered conversation "A:" - no common prefix.
    tokenizer.chat_template = (
        "{% for m in messages %}{{ ('A: ' if m['role'] == 'assistant' else 'Q: ') + m['content'] + eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Answer: ' }}{% endif %}"
    )
    with pytest.raises(ValueError, match="renders the conversation differently from its generation prompt"):
        tokenize_conversation(CHAT_RECORDS[0]["messages"], tokenizer)
    with pytest.raises(ValueError, match="last message of a training conversation must be the assistant"):
        tokenize_conversation(CHAT_RECORDS[0]["messages"][:2], base_tokenizer)


def test_over_long_examples_are_dropped_and_counted_not_truncated(base_tokenizer, formats):
    data = formats["spider-json"]
    lengths = [len(tokenize_conversation(m, base_tokenizer)[0]) for m in data["messages"]]
    max_length = sorted(lengths)[-2]  # exactly one example (the longest) is too long
    assert sorted(lengths)[-1] > max_length
    result = tokenize_dataset(data, base_tokenizer, max_length)
    assert result.num_dropped == 1 and result.max_length == max_length
    assert result.dataset.column_names == ["input_ids", "labels", "length"]
    assert sorted(result.dataset["length"]) == sorted(lengths)[:-1]
    for row in result.dataset:  # the survivors are whole: each still ends its answer with <|im_end|>
        assert len(row["input_ids"]) == row["length"] <= max_length
        assert learned(row["input_ids"], row["labels"])[-1] == 2
    everything = tokenize_dataset(data, base_tokenizer, max(lengths))
    assert everything.num_dropped == 0 and everything.dataset["length"] == lengths
    with pytest.raises(ValueError, match="max_length must be at least 2"):
        tokenize_dataset(data, base_tokenizer, 0)
