"""What a process sets up around its work: DeepSpeed's communication on CPU, Ray Data's console."""

from __future__ import annotations

import logging
import os
import subprocess
import sys


def test_cpu_setup_ignores_a_build_lock_a_killed_process_left(tmp_path):
    # what a process killed while compiling leaves: torch's build lock, a plain file no one will remove
    extensions = tmp_path / "extensions"  # torch builds under $TORCH_EXTENSIONS_DIR/<op name>/
    stale = extensions / "deepspeed_shm_comm"
    stale.mkdir(parents=True)
    (stale / "lock").touch()
    code = (
        "from sarft_ray.training.worker import setup_distributed\n"
        "rank, world, device = setup_distributed()\n"
        "print(rank, world, device.type)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "MASTER_ADDR", "WORLD_SIZE")}
    env |= {"TORCH_EXTENSIONS_DIR": str(extensions), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["0", "1", "cpu"]
    assert [str(p.relative_to(extensions)) for p in extensions.rglob("*")] == ["deepspeed_shm_comm", "deepspeed_shm_comm/lock"]


def test_quietening_ray_data_leaves_handlers_the_root_logger_holds(monkeypatch):
    import ray.data  # noqa: F401 - importing it sets up the "ray.data" logger's own handlers first

    from sarft_ray import progress
    from sarft_ray.ray_utils import quiet_ray_data

    monkeypatch.setattr(progress, "verbose", lambda: False)
    ray_data, root = logging.getLogger("ray.data"), logging.getLogger()
    own, shared = logging.StreamHandler(), logging.StreamHandler()
    for logger, handler in ((ray_data, own), (ray_data, shared), (root, shared)):
        logger.addHandler(handler)
    try:
        quiet_ray_data()
        quiet_ray_data()  # once is enough: no second filter
        info = logging.LogRecord("ray.data.x", logging.INFO, __file__, 1, "planned", None, None)
        warning = logging.LogRecord("ray.data.x", logging.WARNING, __file__, 1, "slow", None, None)
        assert len(own.filters) == 1 and not own.filter(info) and own.filter(warning)
        assert shared.filters == [] and shared.filter(info)  # pytest's, or a host program's, handler sees INFO still
    finally:
        for logger, handler in ((ray_data, own), (ray_data, shared), (root, shared)):
            logger.removeHandler(handler)
