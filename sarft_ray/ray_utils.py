"""Connecting to Ray: the cluster in RAY_ADDRESS / ``ray.address``, or a fresh local one."""

from __future__ import annotations

import logging
import os

from sarft_ray.config import RayConfig

log = logging.getLogger(__name__)

# Quiet noisy-but-harmless Ray loggers on small machines (see the project notes).
_QUIET_LOGGERS = ("ray.train.v2._internal.execution.controller.placement_group_cleaner",)


def _quiet_workers() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def init_ray(cfg: RayConfig | None = None, env_vars: dict[str, str] | None = None):
    """Start or join Ray once per process and return the ``ray`` module.

    With an address (config or RAY_ADDRESS, as ``ray job submit`` sets it) the
    driver joins that cluster; otherwise it starts a local one sized by
    ``ray.num_cpus``. ``env_vars`` reach every worker process.
    """
    import ray

    cfg = cfg or RayConfig()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    runtime_env = {"env_vars": env_vars} if env_vars else None
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        ray.init(
            address="local",
            num_cpus=cfg.num_cpus,
            num_gpus=cfg.num_gpus,
            include_dashboard=cfg.include_dashboard,
            dashboard_host="127.0.0.1",
            runtime_env=runtime_env,
            logging_level=logging.WARNING,
        )
    _quiet_workers()
    return ray
