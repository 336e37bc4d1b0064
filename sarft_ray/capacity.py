"""Whether a cluster can hold what each stage asks of it (``stage_needs``), checked before any work starts.

A local cluster's size is known before it starts (``ray.num_cpus``, else this
machine's CPUs), so a config that cannot run there is refused, by
``validate`` too. A joined cluster (``ray.address`` / RAY_ADDRESS) may add
nodes as work waits (an autoscaler), so there a shortfall is only a warning.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass

from sarft_ray.errors import SarftError
from sarft_ray.stage_needs import EPS, Need, cpus_text, experiment_needs, num_text, sweep_need

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capacity:
    """CPUs and GPUs a cluster has (``gpus`` None: not known yet), and how to name it in a message."""

    cpus: float
    gpus: float | None
    label: str  # names the CPUs: "ray.num_cpus: 2 CPUs"
    joined: bool  # a cluster this process joined: it may grow, so a shortfall only warns
    gpu_label: str = ""  # names the GPUs when they are what is short (default: label)


def placeable_workers(nodes: list[dict], cpus: float, gpus: float) -> int:
    """How many workers of (cpus, gpus) the alive nodes of ``ray.nodes()`` can hold at once."""
    total = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        resources = node.get("Resources", {})
        fits = math.floor(resources.get("CPU", 0.0) / cpus + EPS)
        if gpus > 0:
            fits = min(fits, math.floor(resources.get("GPU", 0.0) / gpus + EPS))
        total += max(fits, 0)
    return total


def shortfall(need: Need, capacity: Capacity) -> str | None:
    """Why ``capacity`` cannot hold ``need``, naming the fields to change; None when it can."""
    problems = []
    if need.cpus > capacity.cpus + EPS:
        problems.append(f"{cpus_text(need.cpus)} in all")
    if capacity.gpus is not None and need.gpus > capacity.gpus + EPS:
        problems.append(f"{num_text(need.gpus)} GPU in all")
    if not problems:
        return None
    cpus_short = need.cpus > capacity.cpus + EPS
    label = capacity.label if cpus_short or not capacity.gpu_label else capacity.gpu_label
    lower = " or ".join(need.knobs())
    if capacity.joined:
        change = f"add nodes or lower {lower}"
    else:
        raise_to = f"raise ray.num_cpus to {math.ceil(need.cpus - EPS)}" if cpus_short else f"raise ray.num_gpus to {math.ceil(need.gpus - EPS)}"
        change = f"{raise_to}, lower {lower}, or run it on a larger cluster (RAY_ADDRESS)"
    return f"{label} cannot hold {need.describe()} ({', '.join(problems)}): {change}"


def local_capacity(ray_cfg) -> Capacity | None:
    """The size of the local cluster ``init_ray`` would start; None when it joins one instead."""
    if ray_cfg.address or os.environ.get("RAY_ADDRESS"):
        return None
    gpu_label = f"ray.num_gpus: {ray_cfg.num_gpus} GPU"
    if ray_cfg.num_cpus is not None:
        return Capacity(ray_cfg.num_cpus, ray_cfg.num_gpus, f"ray.num_cpus: {cpus_text(ray_cfg.num_cpus)}", False, gpu_label)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Capacity(cpus, ray_cfg.num_gpus, f"ray.num_cpus: null (this machine's {cpus_text(cpus)})", False, gpu_label)


def cluster_capacity() -> Capacity:
    """What the connected cluster has now (a local one is refused what it cannot hold; a joined one may grow)."""
    import ray

    from sarft_ray.ray_utils import joined_cluster

    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
    if joined_cluster():
        return Capacity(cpus, gpus, f"the Ray cluster ({cpus_text(cpus)}, {num_text(gpus)} GPU)", joined=True)
    return Capacity(cpus, gpus, f"ray.num_cpus: {cpus_text(cpus)}", False, f"ray.num_gpus: {num_text(gpus)} GPU")


def current_capacity(ray_cfg) -> Capacity | None:
    """The connected cluster's capacity when Ray is up in this process, else the local one the config starts."""
    ray = sys.modules.get("ray")  # importing Ray only to ask costs seconds; if it is not imported it is not up
    if ray is not None and ray.is_initialized():
        return cluster_capacity()
    return local_capacity(ray_cfg)


_warned: set[str] = set()


def check(needs: list[Need | None], capacity: Capacity | None, source: object = None) -> list[str]:
    """Refuse (SarftError) the first need a local cluster cannot hold; on a joined cluster warn once per problem.

    Returns the warnings (empty when everything fits or nothing is known).
    """
    if capacity is None:
        return []
    prefix = f"{source}: " if source else ""
    warnings = []
    for need in needs:
        if need is None:
            continue
        problem = shortfall(need, capacity)
        if problem is None:
            continue
        if not capacity.joined:
            raise SarftError(prefix + problem)
        text = f"{problem}; {need.stage} waits until the cluster grows"
        warnings.append(text)
        if text not in _warned:
            _warned.add(text)
            log.warning("%s", text)
    return warnings


def check_stage(needs: list[Need | None], ray_cfg=None, source: object = None) -> list[str]:
    """``check`` against the running cluster, or (before Ray starts) the local one ``ray_cfg`` describes."""
    from sarft_ray.config import RayConfig

    return check(needs, current_capacity(ray_cfg or RayConfig()), source)


def validate_lines(cfg) -> list[str]:
    """``validate``: every stage's needs against the local cluster; one line saying what was checked."""
    capacity = current_capacity(cfg.ray)
    if capacity is None:
        from sarft_ray.secrets import redact_url

        address = redact_url(cfg.ray.address or os.environ.get("RAY_ADDRESS", ""))
        return [f"ray: joins {address}; placement is checked once connected"]
    needs = experiment_needs(cfg) + [sweep_need(cfg, capacity.cpus)]
    warnings = check(needs, capacity, cfg.source)
    peak = max(n.cpus for n in needs if n is not None)
    line = f"ray: a local cluster of {cpus_text(capacity.cpus)} holds every stage (at most {cpus_text(peak)} at once)"
    return [line] if not warnings else [f"ray: warning: {w}" for w in warnings]
