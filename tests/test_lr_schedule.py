"""LR schedules from transformers.get_scheduler (warmup_steps / warmup_ratio), and LoRA on all linear layers."""

from __future__ import annotations

import math

import pytest
import torch

from sarft_ray.config import parse_config
from sarft_ray.errors import SarftError
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.entry import run_hash
from sarft_ray.training.schedule import build_scheduler


def lrs(total: int, **settings) -> list[float]:
    cfg = TrainingConfig(lr=1.0, **settings)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, total)
    out = []
    for _ in range(total):
        out.append(round(optimizer.param_groups[0]["lr"], 6))
        optimizer.step()
        scheduler.step()
    return out


def test_schedules_by_hand():
    assert lrs(4) == [1.0, 1.0, 1.0, 1.0]
    # warmup from 0 over 2 steps, then linear decay to 0 at step 8: (8 - s) / 6
    assert lrs(8, lr_schedule="linear", warmup_steps=2) == [0.0, 0.5] + [round((8 - s) / 6, 6) for s in range(2, 8)]
    # warmup_ratio 0.2 of 8 steps rounds up to 2 warmup steps: the same schedule
    assert lrs(8, lr_schedule="linear", warmup_ratio=0.2) == lrs(8, lr_schedule="linear", warmup_steps=2)
    # 'constant' with a warmup keeps the warmup (constant_with_warmup)
    assert lrs(5, warmup_steps=2) == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert lrs(4, lr_schedule="cosine") == [round(0.5 * (1 + math.cos(math.pi * s / 4)), 6) for s in range(4)]
    # a schedule's own settings: cosine down to 10% of the peak
    floor = lrs(4, lr_schedule="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1})
    assert floor == [round(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / 4)), 6) for s in range(4)]


@pytest.mark.parametrize(
    "training, message",
    [
        ({"lr_schedule": "cosin"}, r"training\.lr_schedule.*unknown schedule 'cosin'; did you mean 'cosine'"),
        ({"lr_schedule": "reduce_lr_on_plateau"}, r"training\.lr_schedule.*unknown schedule"),
        ({"warmup_steps": 2, "warmup_ratio": 0.1}, r"training.*warmup_steps or warmup_ratio, not both"),
        ({"warmup_ratio": 1.0}, r"training\.warmup_ratio"),
        ({"lr_schedule": "cosine", "lr_scheduler_kwargs": {"min_lr_rate": 0.1}}, r"lr_scheduler_kwargs do not fit schedule 'cosine'"),
        ({"lr_schedule": "cosine_with_min_lr"}, r"lr_scheduler_kwargs do not fit schedule 'cosine_with_min_lr'"),
        ({"lr_schedule": "warmup_stable_decay"}, r"lr_scheduler_kwargs do not fit schedule 'warmup_stable_decay'"),
        ({"lr_scheduler_kwargs": {"bogus": 1}}, r"schedule 'constant' takes no lr_scheduler_kwargs"),
        ({"lora_target_modules": "all-layers"}, r"training\.lora_target_modules"),
        ({"lora_target_modules": []}, r"training\.lora_target_modules"),
    ],
)
def test_bad_schedule_settings_name_the_field(tmp_path, training, message):
    tree = {"experiment": "x", "model": {"ref": "tiny-random"}, "training": training, "roles": {
        "names": ["A"], "corpus": {"format": "table", "paths": ["c.jsonl"]}, "prompts": {"format": "mapping", "path": "p.json"}}}
    with pytest.raises(SarftError, match=message):
        parse_config(tree, "x.yaml", tmp_path)


def test_settings_left_at_their_default_keep_the_run_hash():
    base = TrainingConfig()
    digest = run_hash({"ref": "m"}, base, "rows", None, {})
    assert run_hash({"ref": "m"}, TrainingConfig(warmup_ratio=0.0, lr_scheduler_kwargs={}), "rows", None, {}) == digest
    assert run_hash({"ref": "m"}, TrainingConfig(warmup_ratio=0.1), "rows", None, {}) != digest
    assert run_hash({"ref": "m"}, TrainingConfig(lora_target_modules="all-linear"), "rows", None, {}) != digest


def test_constant_with_a_warmup_hashes_as_the_schedule_that_runs():
    """'constant' with a warmup trains as constant_with_warmup, and is named so: a run stored when the warmup was
    still ignored (named from the settings as written) is not reused."""
    from sarft_ray.config import config_hash
    from sarft_ray.config_base import without_added_defaults
    from sarft_ray.training.config import OPERATIONAL_FIELDS

    def digest(**settings):
        return run_hash({"ref": "m"}, TrainingConfig(**settings), "rows", None, {})

    def as_written(**settings):
        dumped = TrainingConfig(**settings).model_dump(mode="json", exclude=set(OPERATIONAL_FIELDS) | {"deepspeed"})
        return config_hash({"ref": "m"}, without_added_defaults(dumped), "rows", None, {})

    assert digest(lr_schedule="constant", warmup_steps=5) == digest(lr_schedule="constant_with_warmup", warmup_steps=5)
    assert digest(lr_schedule="constant", warmup_steps=5) != as_written(lr_schedule="constant", warmup_steps=5)
    assert digest(lr_schedule="constant", warmup_ratio=0.1) != as_written(lr_schedule="constant", warmup_ratio=0.1)
    # without a warmup, or with another schedule, the name is the one it always was
    assert digest(lr_schedule="constant") == as_written(lr_schedule="constant") == digest()
    assert digest(lr_schedule="cosine", warmup_steps=5) == as_written(lr_schedule="cosine", warmup_steps=5)


def test_all_linear_adapts_every_linear_layer_but_the_output_head(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from sarft_ray.training.worker import prepare_trainable

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = prepare_trainable(model, TrainingConfig(lora_target_modules="all-linear", attn_implementation="eager"))
    wrapped = {name.split(".lora_A")[0].rsplit(".", 1)[-1] for name, _ in adapted.named_parameters() if "lora_A" in name}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("lm_head" in name and "lora" in name for name, _ in adapted.named_parameters())
