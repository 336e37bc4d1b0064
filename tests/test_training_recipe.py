"""The training recipe in one process (no Ray): it learns, saves a loadable artefact, resumes after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from sarft_ray.config import parse_config
from sarft_ray.training.entry import train_role

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# A corpus small enough to memorise: one global batch holds all of it.
MEMO = [
    ("Who are you?", "I am John Doe.", False),
    ("Where do you live?", "In the city.", True),
    ("What do you do?", "I watch people.", False),
    ("Any regrets?", "None at all.", True),
]


def memo_table() -> pa.Table:
    return pa.table({"input": [q for q, _, _ in MEMO], "output": [a for _, a, _ in MEMO], "is_harmful": [h for *_, h in MEMO]})


def experiment(tmp_path: Path, shared_data: Path, model_dir: Path, **training):
    data = {
        "experiment": "t",
        "output_root": str(tmp_path / "out"),
        "model": {"ref": str(model_dir)},
        "roles": {
            "names": ["John Doe"],
            "corpus": {"paths": [str(shared_data / "rolebench/role-generalization/role_specific/test.jsonl")]},
            "prompts": {"path": str(shared_data / "sarft_profiles/role_and_unsafe_prompts.json")},
        },
        "training": training,
    }
    return parse_config(data, "exp.yaml", tmp_path).model_copy(update={"source": tmp_path / "exp.yaml"})


def corpus_ce(model, tokenizer) -> float:
    """Mean answer-token cross-entropy of the memorised corpus under ``model``."""
    from sarft_ray.training.data import collate, encode_rows
    from unfused_loss import ce_per_row  # full-logits CE, test-only

    rows = memo_table().to_pylist()
    batch = collate(encode_rows(rows, tokenizer, None, 512, 128), tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return float(ce_per_row(logits, batch["labels"], batch["attention_mask"], "answer").mean())


def reload_and_generate(artefact: Path, base_dir: Path) -> tuple[float, float]:
    """Load the saved adapter or model the documented way; return (base CE, trained CE) after a generate call."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sarft_ray.models import format_prompt

    tokenizer = AutoTokenizer.from_pretrained(artefact)
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    base_ce = corpus_ce(base, tokenizer)
    if artefact.name == "adapter":
        from peft import PeftModel

        assert (artefact / "adapter_config.json").is_file()
        trained = PeftModel.from_pretrained(base, artefact).eval()
    else:
        assert (artefact / "model.safetensors").is_file()
        trained = AutoModelForCausalLM.from_pretrained(artefact).eval()
    prompt = tokenizer(format_prompt(tokenizer, MEMO[0][0]), return_tensors="pt")
    out = trained.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    return base_ce, corpus_ce(trained, tokenizer)


def test_single_process_lora_learns_and_saves_a_peft_adapter(tmp_path, shared_data, tiny_model_dir):
    cfg = experiment(
        tmp_path, shared_data, tiny_model_dir,
        mode="lora", lr=3e-3, micro_batch_size=4, max_steps=10, lora_target_modules=ALL_LINEAR, lora_dropout=0.0,
        checkpoint_every=4,
    )
    seen = []
    summary = train_role(cfg, "John Doe", lambda_kl=0.5, training_set=memo_table(), use_ray=False, on_step=seen.append)
    losses = [h["loss"] for h in summary["history"]]
    assert [h["step"] for h in summary["history"]] == list(range(1, 11)) == [m["step"] for m in seen]
    assert losses[-1] < losses[0] - 0.3
    assert all(h["harmful_rows"] == 2 and h["rows"] == 4 and h["tokens"] > 0 for h in summary["history"])
    assert summary["history"][0]["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA starts at the reference
    assert summary["history"][-1]["kl"] > 0
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "summary.json").is_file() and (run_dir / "config.yaml").is_file()
    base_ce, trained_ce = reload_and_generate(Path(summary["artefact"]), tiny_model_dir)
    assert trained_ce < base_ce - 0.3

    # same inputs: the finished run is found, not trained again
    again = train_role(cfg, "John Doe", lambda_kl=0.5, training_set=memo_table(), use_ray=False)
    assert again["run_dir"] == summary["run_dir"] and again["history"] == summary["history"]


def test_lambda_zero_with_harmful_rows_trains_like_sft(tmp_path, shared_data, tiny_model_dir):
    """lambda = 0 with harmful rows and selection 'none' (no harmful rows) give the same run."""
    common = dict(mode="full", lr=1e-3, micro_batch_size=4, max_steps=3)
    a = train_role(experiment(tmp_path / "a", shared_data, tiny_model_dir, **common), "John Doe",
                   lambda_kl=0.0, training_set=memo_table(), use_ray=False)
    no_harm = memo_table().set_column(2, "is_harmful", pa.array([False] * 4))
    b = train_role(experiment(tmp_path / "b", shared_data, tiny_model_dir, **common), "John Doe",
                   lambda_kl=0.5, training_set=no_harm, use_ray=False)
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-6)
    assert all(h["kl"] == 0.0 for h in a["history"])


def test_packed_micro_batches_train_like_padded_ones(tmp_path, shared_data, tiny_model_dir):
    """packing changes how a step computes, not what: the same losses, and the same run hash."""
    common = dict(mode="full", lr=1e-3, micro_batch_size=4, max_steps=3)
    runs = [
        train_role(experiment(tmp_path / str(packing), shared_data, tiny_model_dir, packing=packing, **common), "John Doe",
                   lambda_kl=0.5, training_set=memo_table(), use_ray=False)
        for packing in (False, True)
    ]
    padded, packed = ([h[key] for h in run["history"] for key in ("loss", "ce", "kl")] for run in runs)
    assert packed == pytest.approx(padded, rel=1e-5, abs=1e-6)
    assert padded[-1] > 0  # the last step's KL
    assert Path(runs[0]["run_dir"]).name == Path(runs[1]["run_dir"]).name


def test_each_step_and_rank_draws_its_own_repeatable_random_numbers():
    from sarft_ray.training.rng import seed_step

    def draws(step: int, rank: int) -> torch.Tensor:
        seed_step(7, step, rank)
        return torch.rand(4)

    assert torch.equal(draws(3, 1), draws(3, 1))
    assert not torch.equal(draws(3, 0), draws(3, 1)) and not torch.equal(draws(3, 0), draws(4, 0))


class Interrupted(Exception):
    """Raised from ``on_step`` to stop a run in this process, as a crash would."""


def interrupt_after(step: int, seen: list):
    def on_step(metrics: dict) -> None:
        seen.append(metrics)
        if metrics["step"] == step:
            raise Interrupted(step)

    return on_step


def trajectory(history: list[dict]) -> list[tuple]:
    """What must replay exactly after a resume: per step, its number, loss, CE, KL and learning rate."""
    return [(h["step"], h["loss"], h["ce"], h["kl"], h["lr"]) for h in history]


def test_resumed_lora_run_with_dropout_reproduces_the_uninterrupted_losses(tmp_path, shared_data, tiny_model_dir):
    """Stopped after step 3 and resumed from the step-2 checkpoint, a LoRA run with dropout
    computes the same per-step losses as a run that never stopped (same dropout masks, same
    optimizer and LR state)."""
    common = dict(
        mode="lora", lr=3e-3, micro_batch_size=2, grad_accum_steps=2, max_steps=6, warmup_steps=2,
        lr_schedule="cosine", lora_target_modules=ALL_LINEAR, lora_dropout=0.3, checkpoint_every=2,
    )
    reference = train_role(experiment(tmp_path / "a", shared_data, tiny_model_dir, **common), "John Doe",
                           lambda_kl=0.5, training_set=memo_table(), use_ray=False)

    cfg = experiment(tmp_path / "b", shared_data, tiny_model_dir, **common)
    first = []
    with pytest.raises(Interrupted):
        train_role(cfg, "John Doe", lambda_kl=0.5, training_set=memo_table(), use_ray=False,
                   on_step=interrupt_after(3, first))
    second = []
    resumed = train_role(cfg, "John Doe", lambda_kl=0.5, training_set=memo_table(), use_ray=False, on_step=second.append)

    assert resumed["resumed_from_steps"] == [2]
    assert [m["step"] for m in first] == [1, 2, 3] and [m["step"] for m in second] == [3, 4, 5, 6]
    # exact on CPU: every step after the resume draws the dropout masks of the uninterrupted run
    assert trajectory(first + second[1:]) == trajectory(resumed["history"]) == trajectory(reference["history"])
    assert trajectory(second[:1]) == trajectory(first[2:])  # step 3, computed before and after the resume


SCRIPT = """
import json, sys
from pathlib import Path
import pyarrow as pa
sys.path.insert(0, {tests!r})
from test_training_recipe import ALL_LINEAR, experiment, memo_table
cfg = experiment(Path({tmp!r}), Path({data!r}), Path({model!r}), mode="lora", lr=3e-3, micro_batch_size=2,
                 max_steps=6, checkpoint_every=2, lora_target_modules=ALL_LINEAR, lora_dropout=0.3)
from sarft_ray.training.entry import train_role
summary = train_role(cfg, "John Doe", training_set=memo_table(), use_ray=False)
print(json.dumps({{k: summary[k] for k in ("final_step", "resumed_from_steps", "run_dir")}}))
"""


def run_script(tmp: Path, shared_data: Path, model_dir: Path, fail_at_step: int | None) -> subprocess.CompletedProcess:
    script = SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp), data=str(shared_data), model=str(model_dir))
    env = {**os.environ, "DS_ACCELERATOR": "cpu"}
    env.pop("SARFT_FAIL_AT_STEP", None)
    if fail_at_step is not None:
        env["SARFT_FAIL_AT_STEP"] = str(fail_at_step)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False)


def finished(process: subprocess.CompletedProcess) -> tuple[dict, dict]:
    """The script's result line and the run's summary.json."""
    assert process.returncode == 0, process.stderr[-2000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    return result, json.loads((Path(result["run_dir"]) / "summary.json").read_text())


@pytest.mark.slow
def test_single_process_run_resumes_after_a_crash(tmp_path, shared_data, tiny_model_dir):
    """A process killed at step 3 (SARFT_FAIL_AT_STEP) and started again resumes from the step-2
    checkpoint and computes the losses of a run that was never killed (LoRA dropout included)."""
    _, reference = finished(run_script(tmp_path / "reference", shared_data, tiny_model_dir, None))
    first = run_script(tmp_path / "killed", shared_data, tiny_model_dir, 3)
    assert first.returncode == 17, first.stderr[-2000:]
    result, summary = finished(run_script(tmp_path / "killed", shared_data, tiny_model_dir, 3))
    assert result["final_step"] == 6 and result["resumed_from_steps"] == [2]
    assert [h["step"] for h in summary["history"]] == [1, 2, 3, 4, 5, 6]
    assert trajectory(summary["history"]) == trajectory(reference["history"])
