"""What each training worker sets up around the RBO loop (``recipe.train``).

The process group (gloo on CPU, nccl on GPU; a private one-member group for a
lone process), the trainable model (LoRA adapter or every weight) and fault
injection (one worker exits once at a chosen step, to
exercise recovery).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist

from sarft_ray.devices import pick_device
from sarft_ray.training.checkpointing import CheckpointStore
from sarft_ray.training.config import TrainingConfig

log = logging.getLogger(__name__)

FAIL_ENV = "SARFT_FAIL_AT_STEP"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _skip_shared_memory_op(deepspeed) -> None:
    """Keep DeepSpeed from JIT-compiling its CPU shared-memory all-reduce op when it sets up communication.

    Only DeepSpeed's inference all-reduce uses that op; training here all-reduces through gloo. Building it
    needs a C++ compiler and time at the first start, and a process killed while it holds torch's build lock
    (``torch_extensions/.../deepspeed_shm_comm/lock``, a plain file with no owner) leaves every later
    training process on the machine waiting on that lock forever.
    """
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def setup_distributed() -> tuple[int, int, torch.device]:
    """Join the process group Ray Train made, or make a one-process group; return (rank, world, device)."""
    use_cuda = pick_device() == "cuda"  # auto: CUDA when one is visible
    if not use_cuda:
        # DeepSpeed picks its accelerator at import time
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if "RANK" in os.environ and "MASTER_ADDR" in os.environ:  # launched by torchrun or similar
            dist.init_process_group(backend)
        else:  # a lone process: a private one-member group, leaving the environment untouched
            port = _free_port()
            os.environ.setdefault("LOCAL_RANK", "0")  # DeepSpeed's engine reads it
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    if not use_cuda:
        _skip_shared_memory_op(deepspeed)
    deepspeed.init_distributed(dist_backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return rank, world, device


def prepare_trainable(model: torch.nn.Module, cfg: TrainingConfig) -> torch.nn.Module:
    """LoRA: wrap with an adapter (only it trains). Full: every weight trains. Attention kernel and checkpointing per config."""
    from sarft_ray.training.compute import apply_compute_settings

    model.config.use_cache = False
    apply_compute_settings(model, cfg.attn_implementation, cfg.gradient_checkpointing, cfg.mode, cfg.packing)
    if cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules if isinstance(cfg.lora_target_modules, str) else list(cfg.lora_target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    else:
        model.requires_grad_(True)
    return model.train()


def fail_at_step(cfg: TrainingConfig) -> int | None:
    """Fault injection: the config field, else the environment variable."""
    if cfg.fail_at_step is not None:
        return cfg.fail_at_step
    value = os.environ.get(FAIL_ENV)
    return int(value) if value else None


def maybe_fail(step: int, cfg: TrainingConfig, rank: int, world: int, run_dir: str, store: CheckpointStore) -> None:
    """Kill this worker process once, at the configured step, to exercise recovery.

    The last worker exits after the step's update and before its checkpoint.
    It first waits until the earlier checkpoints are registered, so the run
    restarts from a known step (Ray registers reports asynchronously).
    """
    target = fail_at_step(cfg)
    if target is None or step != target or rank != world - 1:
        return
    marker = Path(run_dir) / f"fault_injected_at_step_{target}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"worker rank {rank} exited on purpose after step {step}\n")
    store.flush()
    log.warning("fault injection: rank %d exits after step %d", rank, step)
    os._exit(17)
