"""Batched answer generation: the pure core (torch + transformers, no Ray).

Input rows carry ``user`` (the request text) and ``system`` (null for none);
each row is chat-formatted with the model's template, left-padded in batches
of similar length, and decoded greedily unless sampling is configured. The
output adds ``prompt`` (the formatted text), ``response`` and token counts.
A ``DecodeTimer`` passed along adds up the time spent in ``model.generate``
and the tokens it produced (the evaluation summary's tokens/s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import torch

from sarft_ray.errors import SarftError
from sarft_ray.evaluation.config import GenerationConfig
from sarft_ray.hashing import text_digest
from sarft_ray.models import ModelConfig, format_prompt, load_model_and_tokenizer

OUTPUT_FIELDS = [
    ("prompt", pa.string()),
    ("response", pa.string()),
    ("n_prompt_tokens", pa.int32()),
    ("n_new_tokens", pa.int32()),
    ("prompt_truncated", pa.bool_()),
    ("finished", pa.bool_()),  # an end-of-turn token was produced within max_new_tokens
]


def settings_hash(cfg: GenerationConfig) -> str:
    """Hash of every decoding setting (batch size included: padding can shift fp results)."""
    return text_digest(cfg.model_dump_json(), 12)


def load_generator(model_cfg: ModelConfig, adapter: str | Path | None = None, device: str = "cpu"):
    """The model (with a PEFT adapter merged in, if given) and its tokenizer, ready to generate."""
    model, tokenizer = load_model_and_tokenizer(model_cfg, device=device)
    if adapter is not None:
        adapter = Path(adapter)
        if not (adapter / "adapter_config.json").exists():
            raise SarftError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
        from peft import PeftModel

        # Merging removes the adapter's per-layer overhead from every decoding step.
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()
    tokenizer.padding_side = "left"
    return model, tokenizer


def _eos_ids(model, tokenizer) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, list | tuple) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _decode_kwargs(cfg: GenerationConfig, model, tokenizer) -> dict:
    kwargs = dict(
        max_new_tokens=cfg.max_new_tokens,
        do_sample=cfg.do_sample,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=_eos_ids(model, tokenizer),
    )
    if cfg.do_sample:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)
    else:
        # Neutralise sampling defaults a checkpoint may ship, so greedy stays greedy and quiet.
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


@dataclass
class DecodeTimer:
    """Seconds inside ``model.generate`` (until its tokens are on the host) and what those calls produced."""

    seconds: float = 0.0
    batches: int = 0
    answers: int = 0
    new_tokens: int = 0  # up to the end-of-turn token, as ``n_new_tokens`` counts them

    def summary(self) -> dict:
        """The figures for the evaluation summary (rates are None before any batch)."""
        return {
            "decode_seconds": round(self.seconds, 2),
            "decode_new_tokens": self.new_tokens,
            "decode_new_tokens_per_s": round(self.new_tokens / self.seconds, 1) if self.seconds else None,
        }


@torch.inference_mode()
def generate_batch(
    model, tokenizer, prompts: list[str], cfg: GenerationConfig, seed: int = 0, timer: DecodeTimer | None = None
) -> list[dict]:
    """Generate for already-formatted prompts (one left-padded batch)."""
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    truncated = [len(ids) > cfg.max_prompt_tokens for ids in encoded]
    # Keep the end of an overlong prompt: it holds the request and the assistant header.
    encoded = [ids[-cfg.max_prompt_tokens :] for ids in encoded]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    device = next(model.parameters()).device
    if cfg.do_sample:
        torch.manual_seed(seed)
    started = time.perf_counter()
    out = model.generate(
        input_ids=input_ids.to(device), attention_mask=attention.to(device), **_decode_kwargs(cfg, model, tokenizer)
    )
    generated = out[:, width:].tolist()  # waits for the device
    decode_seconds = time.perf_counter() - started
    eos = set(_eos_ids(model, tokenizer))
    rows = []
    for i, ids in enumerate(generated):
        stop = next((k for k, t in enumerate(ids) if t in eos), None)
        new = ids if stop is None else ids[:stop]
        new = [t for t in new if t != pad]
        rows.append(
            {
                "response": tokenizer.decode(new, skip_special_tokens=True).strip(),
                "n_prompt_tokens": len(encoded[i]),
                "n_new_tokens": len(new),
                "prompt_truncated": truncated[i],
                "finished": stop is not None,
            }
        )
    if timer is not None:
        timer.seconds += decode_seconds
        timer.batches += 1
        timer.answers += len(rows)
        timer.new_tokens += sum(r["n_new_tokens"] for r in rows)
    return rows


def generate_table(
    model, tokenizer, table: pa.Table, cfg: GenerationConfig, seed_offset: int = 0, timer: DecodeTimer | None = None
) -> pa.Table:
    """Answer every row of ``table`` (columns ``user``, ``system``); returns it with the output columns.

    Rows are batched by prompt length (less padding) and put back in input order.
    """
    users = table.column("user").to_pylist()
    systems = table.column("system").to_pylist()
    prompts = [format_prompt(tokenizer, user, system=system) for user, system in zip(users, systems, strict=True)]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    results: list[dict | None] = [None] * len(prompts)
    for start in range(0, len(order), cfg.batch_size):
        chunk = order[start : start + cfg.batch_size]
        outputs = generate_batch(
            model, tokenizer, [prompts[i] for i in chunk], cfg, seed=cfg.seed + seed_offset + start, timer=timer
        )
        for i, output in zip(chunk, outputs, strict=True):
            results[i] = output
    columns = {"prompt": prompts} | {name: [r[name] for r in results] for name, _ in OUTPUT_FIELDS[1:]}
    for name, kind in OUTPUT_FIELDS:
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(pa.field(name, kind), pa.array(columns[name], type=kind))
    return table
