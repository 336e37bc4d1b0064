import json
import shutil

import pyarrow as pa
import pytest
import torch

from sarft_ray.errors import SarftError
from sarft_ray.evaluation.config import GenerationConfig
from sarft_ray.evaluation.generation import (
    DecodeTimer,
    generate_batch,
    generate_table,
    load_generator,
    settings_hash,
)
from sarft_ray.models import (
    ModelConfig,
    build_tiny_model,
    build_tiny_tokenizer,
    format_prompt,
    save_tiny_model,
)
from sarft_ray.models.identity import adapter_fingerprint
from sarft_ray.models.tiny import NO_SYSTEM_TEMPLATE

USERS = ["hi", "a much longer question about many things", "mid length q", "x", "another one", "z z z"]
SYSTEMS = [None, "You are a pirate.", None, None, "Be brief.", None]


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tiny_tokenizer()
    tokenizer.padding_side = "left"
    return build_tiny_model(tokenizer), tokenizer


def _table(users=USERS, systems=SYSTEMS) -> pa.Table:
    return pa.table({"item_id": [str(i) for i in range(len(users))], "user": users, "system": pa.array(systems, pa.string())})


def test_batched_left_padded_greedy_matches_one_at_a_time(tiny):
    model, tokenizer = tiny
    cfg = GenerationConfig(max_new_tokens=10, batch_size=4)
    out = generate_table(model, tokenizer, _table(), cfg).to_pylist()
    assert [r["item_id"] for r in out] == [str(i) for i in range(len(USERS))]  # input order kept
    for row, user, system in zip(out, USERS, SYSTEMS):
        assert row["prompt"] == format_prompt(tokenizer, user, system=system)
        (single,) = generate_batch(model, tokenizer, [row["prompt"]], cfg)
        assert row["response"] == single["response"]
        assert row["n_new_tokens"] == single["n_new_tokens"] <= 10
        assert row["n_prompt_tokens"] == len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
    assert "You are a pirate." in out[1]["prompt"]


def test_template_without_system_role_folds_system_text(tiny):
    model, _ = tiny
    tokenizer = build_tiny_tokenizer(NO_SYSTEM_TEMPLATE)
    tokenizer.padding_side = "left"
    out = generate_table(model, tokenizer, _table(), GenerationConfig(max_new_tokens=4)).to_pylist()
    assert "You are a pirate.\n\na much longer" in out[1]["prompt"]


def test_long_prompts_keep_their_end(tiny):
    model, tokenizer = tiny
    cfg = GenerationConfig(max_new_tokens=3, max_prompt_tokens=16)
    (row,) = generate_batch(model, tokenizer, [format_prompt(tokenizer, "y" * 100)], cfg)
    assert row["prompt_truncated"] and row["n_prompt_tokens"] == 16


def test_sampling_is_seeded(tiny):
    model, tokenizer = tiny
    cfg = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=1.5, seed=7)
    first = generate_table(model, tokenizer, _table(), cfg).column("response").to_pylist()
    again = generate_table(model, tokenizer, _table(), cfg).column("response").to_pylist()
    other = generate_table(model, tokenizer, _table(), cfg.model_copy(update={"seed": 8})).column("response")
    assert first == again
    assert first != other.to_pylist()


def test_settings_hash_tracks_decoding_settings():
    base = GenerationConfig()
    assert settings_hash(base) == settings_hash(GenerationConfig())
    assert settings_hash(base) != settings_hash(GenerationConfig(max_new_tokens=64))
    assert settings_hash(base) != settings_hash(GenerationConfig(system_prompt="role"))


@pytest.fixture(scope="module")
def model_and_adapter(tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("gen")
    model_dir = save_tiny_model(root / "model")
    base = build_tiny_model(build_tiny_tokenizer())
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero; make the adapter change the model
                param.normal_(0, 0.5)
    peft_model.save_pretrained(root / "adapter")
    return model_dir, root / "adapter"


def test_adapter_is_applied(model_and_adapter):
    from peft import PeftModel

    model_dir, adapter_dir = model_and_adapter
    cfg = GenerationConfig(max_new_tokens=8, batch_size=3)
    model_cfg = ModelConfig(ref=str(model_dir))
    plain, tokenizer = load_generator(model_cfg)
    merged, _ = load_generator(model_cfg, adapter_dir)
    with_adapter = generate_table(merged, tokenizer, _table(), cfg).column("response").to_pylist()
    without = generate_table(plain, tokenizer, _table(), cfg).column("response").to_pylist()
    assert with_adapter != without

    # The merged model answers like the unmerged PEFT model.
    reference_base, _ = load_generator(model_cfg)
    unmerged = PeftModel.from_pretrained(reference_base, str(adapter_dir)).eval()
    assert generate_table(unmerged, tokenizer, _table(), cfg).column("response").to_pylist() == with_adapter


def test_adapter_errors_and_fingerprint(model_and_adapter, tmp_path):
    model_dir, adapter_dir = model_and_adapter
    with pytest.raises(SarftError, match="not a PEFT adapter"):
        load_generator(ModelConfig(ref=str(model_dir)), tmp_path)
    assert adapter_fingerprint(None) is None
    assert adapter_fingerprint(adapter_dir) == adapter_fingerprint(adapter_dir)
    assert adapter_fingerprint(adapter_dir) != adapter_fingerprint(model_dir)

    # the same adapter saved from a base loaded elsewhere: the same fingerprint; other weights: another
    moved = shutil.copytree(adapter_dir, tmp_path / "moved")
    config = json.loads((moved / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "/elsewhere/base"}, indent=4))
    (moved / "README.md").write_text("base_model: /elsewhere/base\n")
    assert adapter_fingerprint(moved) == adapter_fingerprint(adapter_dir)
    (moved / "adapter_config.json").write_text(json.dumps(config | {"r": config["r"] * 2}))
    assert adapter_fingerprint(moved) != adapter_fingerprint(adapter_dir)


def test_decode_timer_adds_up_the_batches(tiny):
    model, tokenizer = tiny
    timer = DecodeTimer()
    out = generate_table(model, tokenizer, _table(), GenerationConfig(max_new_tokens=7, batch_size=4), timer=timer).to_pylist()
    assert (timer.batches, timer.answers) == (2, len(USERS))
    assert timer.new_tokens == sum(r["n_new_tokens"] for r in out) > 0
    summary = timer.summary()
    assert timer.seconds > 0 and summary["decode_new_tokens_per_s"] == pytest.approx(timer.new_tokens / timer.seconds, rel=0.01)
    assert DecodeTimer().summary()["decode_new_tokens_per_s"] is None
