"""What each stage asks of Ray (CPUs, GPUs) and whether a cluster can hold it.

A job whose actors or workers can never be placed does not fail in Ray: it
waits forever. So every stage states its needs here, and they are compared
with what the cluster has before any work starts:

- scoring: ``scoring.num_actors`` actors of ``scoring.actor_num_cpus`` plus
  one CPU for Ray Data's read tasks (a parquet read task asks for one whole
  CPU; an actor pool that leaves less stalls the pipeline);
- evaluation (``backend: ray``): the generation actors; their input is
  already in the object store (``from_arrow``), so no read task runs;
- training: ``training.workers`` x ``cpus_per_worker`` (Ray Train's
  controller takes no CPU in Ray 2.60);
- a sweep: every concurrent trial's driver (``sweep.trial_cpus``) plus one
  trial's training or evaluation, whichever is larger; with less, the trial
  drivers hold the CPUs their own workers wait for.

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

log = logging.getLogger(__name__)

READ_TASK_CPUS = 1.0  # Ray Data's default num_cpus for a read task
_RESOURCE_FIELDS = {"workers", "cpus_per_worker", "gpus_per_worker"}
_EPS = 1e-9


@dataclass(frozen=True)
class Part:
    """One group of actors or workers: what it is (with its field names), and what it holds."""

    what: str
    cpus: float
    gpus: float = 0.0
    knobs: tuple[str, ...] = ()  # fields that make it smaller


@dataclass(frozen=True)
class Need:
    """Everything one stage holds at once on the cluster."""

    stage: str
    parts: tuple[Part, ...]

    @property
    def cpus(self) -> float:
        return sum(p.cpus for p in self.parts)

    @property
    def gpus(self) -> float:
        return sum(p.gpus for p in self.parts)

    def describe(self) -> str:
        return " plus ".join(p.what for p in self.parts)

    def knobs(self) -> list[str]:
        return list(dict.fromkeys(k for p in self.parts for k in p.knobs))


@dataclass(frozen=True)
class Capacity:
    """CPUs and GPUs a cluster has (``gpus`` None: not known yet), and how to name it in a message."""

    cpus: float
    gpus: float | None
    label: str  # names the CPUs: "ray.num_cpus: 2 CPUs"
    joined: bool  # a cluster this process joined: it may grow, so a shortfall only warns
    gpu_label: str = ""  # names the GPUs when they are what is short (default: label)


def _n(value: float) -> str:
    return f"{value:g}"


def _cpus(value: float) -> str:
    return f"{_n(value)} CPU" + ("" if value <= 1 else "s")


def _pool(section, prefix: str, count: str, cpus: str, gpus: str) -> Part:
    """``count`` actors or workers of (``cpus``, ``gpus``) each: fields of ``section``, named under ``prefix``."""
    n, cpu, gpu = getattr(section, count), getattr(section, cpus), getattr(section, gpus)
    gpu_text = f", {gpus}={_n(gpu)} GPU" if gpu else ""
    knobs = (f"{prefix}.{count}", f"{prefix}.{cpus}") + ((f"{prefix}.{gpus}",) if gpu else ())
    least = getattr(section, "min_actors", None)
    if least is not None:  # an autoscaling pool needs its smallest size; it grows only into free resources
        label = f"{prefix}.min_actors={least} (growing to {count}={n}) x {cpus}={_cpus(cpu)}{gpu_text}"
        return Part(label, least * cpu, least * gpu, (f"{prefix}.min_actors",) + knobs[1:])
    return Part(f"{prefix}.{count}={n} x {cpus}={_cpus(cpu)}{gpu_text}", n * cpu, n * gpu, knobs)


def scoring_need(scoring) -> Need:
    """RDS: the scoring actor pool and a CPU for the parquet read tasks that feed it."""
    actors = _pool(scoring, "scoring", "num_actors", "actor_num_cpus", "num_gpus_per_actor")
    return Need("scoring", (actors, Part(f"{_cpus(READ_TASK_CPUS)} for Ray Data's read tasks", READ_TASK_CPUS)))


def evaluation_need(ev, prefix: str = "evaluation") -> Need | None:
    """Generation actors (None when evaluation runs in-process)."""
    return generation_need(ev, prefix) if ev.backend == "ray" else None


def generation_need(ev, prefix: str = "evaluation") -> Need:
    """The generation actor pool of an evaluation section."""
    return Need("evaluation", (_pool(ev, prefix, "num_actors", "actor_num_cpus", "actor_num_gpus"),))


def training_need(training, prefix: str = "training") -> Need:
    """One Ray Train worker group (placed all at once)."""
    return Need("training", (_pool(training, prefix, "workers", "cpus_per_worker", "gpus_per_worker"),))


def stalled(need: Need, what: str) -> str:
    """The message when ``what`` makes no progress: what it holds and the fields that make it smaller."""
    return (
        f"{what} stalled: it needs {need.describe()} ({_cpus(need.cpus)}) and the cluster has not given it that; "
        f"free the cluster or lower {' or '.join(need.knobs())}"
    )


def _largest(space: dict, key: str, default: float) -> float:
    """The largest value a sweep dimension can give a resource field (the config's own when not swept)."""
    dim = space.get(key)
    if dim is None:
        return default
    if dim.values is not None:
        return max(float(v) for v in dim.values)
    return float((dim.uniform or dim.loguniform)[1])


def trial_count(cfg) -> int:
    """Trials a sweep runs: the grid's size (roles by default) times ``num_samples``."""
    sweep = cfg.sweep
    size = 1 if "role" in sweep.space else len(cfg.roles.names)
    for dim in sweep.space.values():
        if dim.grid is not None:
            size *= len(dim.grid)
    return size * sweep.num_samples


def sweep_need(cfg, cluster_cpus: float | None = None) -> Need | None:
    """Concurrent trial drivers plus the larger of one trial's training and evaluation.

    Without ``max_concurrent_trials`` Tune starts as many trials as their
    drivers' CPUs allow, so ``cluster_cpus`` (when known) bounds the count.
    """
    sweep = cfg.sweep
    if sweep is None:
        return None
    training = cfg.training.model_copy(
        update={
            "workers": int(_largest(sweep.space, "workers", cfg.training.workers)),
            "cpus_per_worker": _largest(sweep.space, "cpus_per_worker", cfg.training.cpus_per_worker),
            "gpus_per_worker": _largest(sweep.space, "gpus_per_worker", cfg.training.gpus_per_worker),
        }
    )
    trials = trial_count(cfg)
    if sweep.max_concurrent_trials is not None:
        concurrent, knob = min(trials, sweep.max_concurrent_trials), "sweep.max_concurrent_trials"
        count = f"sweep.max_concurrent_trials={concurrent}" if concurrent == sweep.max_concurrent_trials else f"{trials} trials"
    else:
        fit = trials if cluster_cpus is None else max(1, math.floor(cluster_cpus / sweep.trial_cpus + _EPS))
        concurrent, knob = min(trials, fit), "sweep.max_concurrent_trials"
        count = f"{concurrent} concurrent trials (sweep.max_concurrent_trials null)"
    gpu = f", trial_gpus={_n(sweep.trial_gpus)} GPU" if sweep.trial_gpus else ""
    drivers = Part(
        f"{count} x trial_cpus={_cpus(sweep.trial_cpus)}{gpu} for trial drivers",
        concurrent * sweep.trial_cpus,
        concurrent * sweep.trial_gpus,
        (knob, "sweep.trial_cpus") + (("sweep.trial_gpus",) if sweep.trial_gpus else ()),
    )
    evaluation = evaluation_need(sweep.evaluation or cfg.evaluation, "sweep.evaluation" if sweep.evaluation else "evaluation")
    stages = [training_need(training)] + ([evaluation] if evaluation else [])
    largest = max(stages, key=lambda need: (need.cpus, need.gpus))
    return Need("sweep", (drivers, *largest.parts))


def experiment_needs(cfg) -> list[Need]:
    """What every stage of ``cfg`` holds at its peak (each arm's training, the alignment, a sweep)."""
    needs = [scoring_need(cfg.scoring), training_need(cfg.training)]
    if cfg.arms:
        from sarft_ray.orchestration.arms import resolve_arms

        for arm in resolve_arms(cfg):
            if _RESOURCE_FIELDS & set(arm.overrides):
                needs.append(training_need(arm.training, f"arms[{arm.name}]"))
    if cfg.alignment is not None:
        needs.append(training_need(cfg.alignment.training, "alignment.training"))
    evaluation = evaluation_need(cfg.evaluation)
    if evaluation is not None:
        needs.append(evaluation)
    return needs


def placeable_workers(nodes: list[dict], cpus: float, gpus: float) -> int:
    """How many workers of (cpus, gpus) the alive nodes of ``ray.nodes()`` can hold at once."""
    total = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        resources = node.get("Resources", {})
        fits = math.floor(resources.get("CPU", 0.0) / cpus + _EPS)
        if gpus > 0:
            fits = min(fits, math.floor(resources.get("GPU", 0.0) / gpus + _EPS))
        total += max(fits, 0)
    return total


def shortfall(need: Need, capacity: Capacity) -> str | None:
    """Why ``capacity`` cannot hold ``need``, naming the fields to change; None when it can."""
    problems = []
    if need.cpus > capacity.cpus + _EPS:
        problems.append(f"{_cpus(need.cpus)} in all")
    if capacity.gpus is not None and need.gpus > capacity.gpus + _EPS:
        problems.append(f"{_n(need.gpus)} GPU in all")
    if not problems:
        return None
    cpus_short = need.cpus > capacity.cpus + _EPS
    label = capacity.label if cpus_short or not capacity.gpu_label else capacity.gpu_label
    lower = " or ".join(need.knobs())
    if capacity.joined:
        change = f"add nodes or lower {lower}"
    else:
        raise_to = f"raise ray.num_cpus to {math.ceil(need.cpus - _EPS)}" if cpus_short else f"raise ray.num_gpus to {math.ceil(need.gpus - _EPS)}"
        change = f"{raise_to}, lower {lower}, or run it on a larger cluster (RAY_ADDRESS)"
    return f"{label} cannot hold {need.describe()} ({', '.join(problems)}): {change}"


def local_capacity(ray_cfg) -> Capacity | None:
    """The size of the local cluster ``init_ray`` would start; None when it joins one instead."""
    if ray_cfg.address or os.environ.get("RAY_ADDRESS"):
        return None
    gpu_label = f"ray.num_gpus: {ray_cfg.num_gpus} GPU"
    if ray_cfg.num_cpus is not None:
        return Capacity(ray_cfg.num_cpus, ray_cfg.num_gpus, f"ray.num_cpus: {_cpus(ray_cfg.num_cpus)}", False, gpu_label)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Capacity(cpus, ray_cfg.num_gpus, f"ray.num_cpus: null (this machine's {_cpus(cpus)})", False, gpu_label)


def cluster_capacity() -> Capacity:
    """What the connected cluster has now (a local one is refused what it cannot hold; a joined one may grow)."""
    import ray

    from sarft_ray.ray_utils import joined_cluster

    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
    if joined_cluster():
        return Capacity(cpus, gpus, f"the Ray cluster ({_cpus(cpus)}, {_n(gpus)} GPU)", joined=True)
    return Capacity(cpus, gpus, f"ray.num_cpus: {_cpus(cpus)}", False, f"ray.num_gpus: {_n(gpus)} GPU")


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
    line = f"ray: a local cluster of {_cpus(capacity.cpus)} holds every stage (at most {_cpus(peak)} at once)"
    return [line] if not warnings else [f"ray: warning: {w}" for w in warnings]
