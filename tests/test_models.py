"""Model references, tiny models and chat formatting."""

from __future__ import annotations

import pytest
import torch

from sarft_ray.errors import SarftError
from sarft_ray.models import (
    build_tiny_tokenizer,
    encode_pair,
    format_prompt,
    load_model_and_tokenizer,
    resolve_model_dir,
    save_tiny_model,
    supports_system_role,
)
from sarft_ray.models.tiny import NO_SYSTEM_TEMPLATE


def test_tiny_tokenizer_round_trips_text_without_download():
    tokenizer = build_tiny_tokenizer()
    text = "Ahoy, matey! Ça va? 你好"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) == len(text.encode())  # one token per byte


def test_chat_template_renders_system_turn():
    tokenizer = build_tiny_tokenizer()
    prompt = format_prompt(tokenizer, "Who are you?", system="You are Jack Sparrow.")
    assert supports_system_role(tokenizer)
    assert prompt == (
        "<|im_start|>system\nYou are Jack Sparrow.<|im_end|>\n"
        "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_without_system_role_gets_system_text_in_first_user_turn():
    tokenizer = build_tiny_tokenizer(NO_SYSTEM_TEMPLATE)
    assert not supports_system_role(tokenizer)
    prompt = format_prompt(tokenizer, "Who are you?", system="You are Jack Sparrow.")
    assert prompt == "<|im_start|>user\nYou are Jack Sparrow.\n\nWho are you?<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_without_chat_template_is_an_error():
    tokenizer = build_tiny_tokenizer(chat_template=None)
    with pytest.raises(SarftError, match="no chat template"):
        format_prompt(tokenizer, "hi")


def test_encode_pair_keeps_system_prefix_and_truncates_question_and_answer():
    tokenizer = build_tiny_tokenizer()
    system = "You are a pirate."
    short = encode_pair(tokenizer, "q", "yo", system=system)
    assert not short.truncated
    assert short.answer_ids == tokenizer("yo", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prefix = tokenizer(format_prompt(tokenizer, "", system), add_special_tokens=False)["input_ids"][:20]
    long = encode_pair(tokenizer, "x" * 50, "y" * 50, system=system, max_source_tokens=10, max_target_tokens=7)
    assert long.truncated
    assert long.prompt_ids[:20] == prefix
    assert len(long.answer_ids) == 7 and tokenizer.eos_token_id not in long.answer_ids
    assert tokenizer.decode(long.prompt_ids).count("x") == 10


def test_local_directory_loads_and_generates(tiny_model_dir):
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    ids = tokenizer(format_prompt(tokenizer, "hello"), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4
    assert model.dtype == torch.float32 and not model.training


def test_tiny_model_is_deterministic_per_seed(tmp_path):
    a = load_model_and_tokenizer(str(save_tiny_model(tmp_path / "a", seed=3)))[0]
    b = load_model_and_tokenizer(str(save_tiny_model(tmp_path / "b", seed=3)))[0]
    for (name, pa_), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa_, pb), name


@pytest.mark.parametrize("ref", ["./no/such/model", "/tmp/definitely-missing-model-dir", "missing.gguf"])
def test_missing_model_path_is_reported(ref):
    with pytest.raises(SarftError, match="model path does not exist"):
        resolve_model_dir(ref)


def test_directory_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(SarftError, match="no config.json"):
        resolve_model_dir(str(tmp_path))


def test_hub_ids_pass_through_unchanged():
    assert resolve_model_dir("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_trust_remote_code_is_off_by_default():
    from sarft_ray.models import ModelConfig

    assert ModelConfig(ref="x/y").trust_remote_code is False


@pytest.mark.slow
def test_smollm2_alias_loads_real_model_with_system_turn_and_knows_paris():
    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct")
    prompt = format_prompt(tokenizer, "What is the capital of France?", system="You are a helpful assistant.")
    assert "<|im_start|>system\nYou are a helpful assistant.<|im_end|>" in prompt
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


# A ChatML template that, like SmolLM2's and Qwen's, inserts its own system text when none is given.
DEFAULT_SYSTEM_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named Tiny<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_no_system_prompt_is_an_empty_system_turn_unless_the_template_default_is_asked_for():
    from sarft_ray.models.chat import set_no_system_prompt

    tokenizer = build_tiny_tokenizer(DEFAULT_SYSTEM_TEMPLATE)
    assert format_prompt(tokenizer, "Who are you?") == (
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "named Tiny" not in tokenizer.decode(encode_pair(tokenizer, "Who are you?", "Jack.").prompt_ids)
    set_no_system_prompt(tokenizer, "template_default")
    assert format_prompt(tokenizer, "Who are you?").startswith("<|im_start|>system\nYou are a helpful AI assistant named Tiny")
    # a template without a system role gets no system turn at all
    assert format_prompt(build_tiny_tokenizer(NO_SYSTEM_TEMPLATE), "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.slow
def test_smollm2_training_input_holds_no_default_system_text():
    from sarft_ray.models import ModelConfig, load_tokenizer
    from sarft_ray.training.data import encode_rows

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    [example] = encode_rows([{"input": "Who are you?", "output": "Jack.", "is_harmful": False}], tokenizer, None, 512, 128)
    rendered = tokenizer.decode(example.input_ids)
    assert rendered.startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>")
    assert "SmolLM" not in rendered and "helpful AI assistant" not in rendered
    assert "SmolLM" not in format_prompt(tokenizer, "Who are you?")  # generation and the no-system scoring pass
    default = load_tokenizer(ModelConfig(ref="smollm2-135m-instruct", no_system_prompt="template_default"))
    assert "named SmolLM" in format_prompt(default, "Who are you?")
