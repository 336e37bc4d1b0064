"""The RBO training loop: one function, readable top to bottom, no Ray imports.

It runs as a plain single process (``train(job)``, for debugging and GPU
checks) and, unchanged, as the per-worker function of a Ray ``TorchTrainer``
(``ray_trainer.py`` passes a checkpoint store backed by ``ray.train``).

Per worker (the setup steps live in ``worker.py``):
1. join (or create) the torch process group: gloo on CPU, nccl on GPU;
2. load the starting model; wrap it with LoRA or train every weight;
3. build the reference (adapter off, or a frozen copy) when the KL term can fire;
4. hand model, AdamW and the LR schedule to DeepSpeed (ZeRO stage from the JSON);
5. resume from the latest checkpoint, if any;
6. per optimizer step: reseed from (seed, step, rank) (``rng.py``: dropout
   after a resume draws what an uninterrupted run draws), ``grad_accum_steps``
   micro-batches of CE + lambda*KL, metrics averaged over workers, an optional
   checkpoint;
7. write the final adapter or model with its summary.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from sarft_ray.models.saving import save_pretrained
from sarft_ray.training.checkpointing import (
    FINAL,
    STATE_TAG,
    CheckpointStore,
    LocalCheckpoints,
)
from sarft_ray.training.compute import resolve_packing
from sarft_ray.training.config import TrainingConfig
from sarft_ray.training.data import StepPlan, collate, encode_rows
from sarft_ray.training.loss import LossOptions, rbo_forward
from sarft_ray.training.reference import build_reference, policy_logits
from sarft_ray.training.rng import seed_step
from sarft_ray.training.schedule import build_scheduler
from sarft_ray.training.worker import (  # noqa: F401 - FAIL_ENV: ray_trainer reads it from here
    FAIL_ENV,
    maybe_fail,
    prepare_trainable,
    setup_distributed,
)

log = logging.getLogger(__name__)


@dataclass
class TrainJob:
    """Everything a worker needs, as plain data (it travels to Ray workers)."""

    model: dict  # ModelConfig as JSON
    training: dict  # TrainingConfig as JSON (overrides already applied)
    rows: list[dict]  # input, output, is_harmful
    run_dir: str  # the run's directory (fault-injection marker, nothing else)
    role: str = ""
    system_prompt: str | None = None
    meta: dict = field(default_factory=dict)  # echoed into the summary (selection, hashes, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainJob:
        return cls(**data)


# ---------------------------------------------------------------------------- the loop


def train(
    job: TrainJob,
    store: CheckpointStore | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """Run (or resume) one role's RBO fine-tuning; return the summary (on every rank)."""
    import deepspeed

    from sarft_ray.models import load_model_and_tokenizer
    from sarft_ray.models.config import ModelConfig
    from sarft_ray.training.deepspeed_config import resolve_config

    cfg = TrainingConfig.model_validate(job.training)
    store = store or LocalCheckpoints(Path(job.run_dir) / "checkpoints", keep=cfg.keep_checkpoints)
    rank, world, device = setup_distributed()

    # Resuming a finished run only returns its summary.
    with store.latest() as checkpoint:
        if checkpoint is not None and (checkpoint / FINAL / "summary.json").is_file():
            return json.loads((checkpoint / FINAL / "summary.json").read_text())

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model_and_tokenizer(ModelConfig.model_validate(job.model), device=device)
    dtype = next(model.parameters()).dtype
    model = prepare_trainable(model, cfg)
    packed = resolve_packing(cfg.packing, model.config._attn_implementation)

    options = LossOptions(lambda_kl=cfg.lambda_kl, **cfg.loss_settings())
    needs_reference = cfg.lambda_kl > 0 and any(r["is_harmful"] for r in job.rows)
    # Full fine-tuning copies the weights here, before any update; LoRA copies nothing.
    reference = build_reference(model, cfg.mode, packed) if needs_reference else None

    examples = encode_rows(
        job.rows, tokenizer, job.system_prompt if cfg.use_system_prompt else None,
        cfg.max_source_tokens, cfg.max_target_tokens,
    )
    plan = StepPlan(
        num_rows=len(job.rows),
        micro_batch_size=cfg.micro_batch_size,
        grad_accum_steps=cfg.grad_accum_steps,
        world_size=world,
        seed=cfg.seed,
        epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        lengths=tuple(len(e.input_ids) for e in examples),  # similar lengths share a micro-batch
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = build_scheduler(optimizer, cfg, plan.total_steps)
    engine, optimizer, _, scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=resolve_config(cfg, world, dtype),
        dist_init_required=False,
    )
    policy = policy_logits(engine, packed)

    start_step, history, resumed_from = 0, [], []
    with store.latest() as checkpoint:
        if checkpoint is not None:
            _, client = engine.load_checkpoint(
                str(checkpoint), tag=STATE_TAG, load_module_strict=cfg.mode == "full",
                load_optimizer_states=True, load_lr_scheduler_states=True,
            )
            start_step, history = client["step"], client["history"]
            resumed_from = client.get("resumed_from", []) + [start_step]
            if rank == 0:
                log.info("resumed from step %d", start_step)

    attempt_start = time.perf_counter()
    for step in range(start_step, plan.total_steps):
        tic = time.perf_counter()
        seed_step(cfg.seed, step, rank)
        lr = scheduler.get_last_lr()[0]
        # [loss, ce, kl * harmful rows, harmful rows, rows, tokens, micro-batches]
        totals = torch.zeros(7, dtype=torch.float64)
        for indices in plan.micro_batches(step, rank):
            batch = collate([examples[i] for i in indices], tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            out = rbo_forward(policy, reference, batch, options)
            engine.backward(out.loss)
            engine.step()
            totals += torch.tensor(
                [float(out.loss.detach()), out.ce, out.kl * out.harmful_rows, out.harmful_rows, out.rows,
                 float(batch["attention_mask"].sum()), 1.0],
                dtype=torch.float64,
            )
        totals = totals.to(device)  # nccl reduces device tensors only
        dist.all_reduce(totals)
        elapsed = time.perf_counter() - tic
        loss, ce, kl_sum, harmful, rows, tokens, micro = totals.tolist()
        metrics = {
            "step": step + 1,
            "total_steps": plan.total_steps,  # a progress bar's length
            "epoch": plan.epoch_of(step),
            "loss": loss / micro,
            "ce": ce / micro,
            "kl": kl_sum / harmful if harmful else 0.0,
            "harmful_rows": int(harmful),
            "rows": int(rows),
            "tokens": int(tokens),
            "tokens_per_s": tokens / elapsed,
            "step_time_s": elapsed,
            "lr": lr,
        }
        history.append(metrics)
        if rank == 0:
            log.info("step %(step)d loss %(loss).4f ce %(ce).4f kl %(kl).4f harmful %(harmful_rows)d", metrics)
            if on_step is not None:
                on_step(metrics)
        maybe_fail(step + 1, cfg, rank, world, job.run_dir, store)

        done = step + 1 == plan.total_steps
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and not done:
            state = {"step": step + 1, "history": history, "resumed_from": resumed_from}

            def write_state(directory: Path, state=state) -> None:
                engine.save_checkpoint(
                    str(directory), tag=STATE_TAG, client_state=state, exclude_frozen_parameters=cfg.mode == "lora"
                )

            store.save(metrics, write_state)
        else:
            store.log(metrics)

    summary = _summary(job, cfg, plan, history, resumed_from, world, device, dtype, time.perf_counter() - attempt_start)

    def write_final(directory: Path) -> None:
        if rank != 0:
            return
        final = directory / FINAL
        target = final / ("adapter" if cfg.mode == "lora" else "model")
        save_pretrained(engine.module, tokenizer, target)
        (final / "summary.json").write_text(json.dumps(summary, indent=2))

    store.save({"final_step": history[-1]["step"] if history else 0}, write_final)
    return summary


def _summary(job, cfg, plan, history, resumed_from, world, device, dtype, seconds) -> dict:
    """What a finished run reports: settings that matter, the data it saw, the per-step history."""
    timed = history[1:] or history  # the first step includes one-off warm-up
    return {
        "role": job.role,
        "mode": cfg.mode,
        "lambda_kl": cfg.lambda_kl,
        "loss_settings": cfg.loss_settings(),
        "rows": plan.num_rows,
        "harmful_rows": sum(bool(r["is_harmful"]) for r in job.rows),
        "repeated_rows_per_epoch": plan.repeated_rows,
        "global_batch_size": plan.global_batch,
        "steps": plan.total_steps,
        "final_step": history[-1]["step"] if history else 0,
        "resumed_from_steps": resumed_from,
        "world_size": world,
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
        "first_loss": history[0]["loss"] if history else None,
        "last_loss": history[-1]["loss"] if history else None,
        "mean_tokens_per_s": sum(h["tokens_per_s"] for h in timed) / len(timed) if timed else None,
        "seconds_this_attempt": seconds,
        "history": history,
        **job.meta,
    }
