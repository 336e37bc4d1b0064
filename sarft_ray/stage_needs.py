"""What each stage asks of Ray (CPUs, GPUs), from its config section.

A job whose actors or workers can never be placed does not fail in Ray: it
waits forever. So every stage states its needs here, and ``capacity``
compares them with what the cluster has before any work starts:

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

READ_TASK_CPUS = 1.0  # Ray Data's default num_cpus for a read task
_RESOURCE_FIELDS = {"workers", "cpus_per_worker", "gpus_per_worker"}
EPS = 1e-9


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


def num_text(value: float) -> str:
    return f"{value:g}"


def cpus_text(value: float) -> str:
    return f"{num_text(value)} CPU" + ("" if value <= 1 else "s")


def _pool(section, prefix: str, count: str, cpus: str, gpus: str) -> Part:
    """``count`` actors or workers of (``cpus``, ``gpus``) each: fields of ``section``, named under ``prefix``."""
    n, cpu, gpu = getattr(section, count), getattr(section, cpus), getattr(section, gpus)
    gpu_text = f", {gpus}={num_text(gpu)} GPU" if gpu else ""
    knobs = (f"{prefix}.{count}", f"{prefix}.{cpus}") + ((f"{prefix}.{gpus}",) if gpu else ())
    least = getattr(section, "min_actors", None)
    if least is not None:  # an autoscaling pool needs its smallest size; it grows only into free resources
        label = f"{prefix}.min_actors={least} (growing to {count}={n}) x {cpus}={cpus_text(cpu)}{gpu_text}"
        return Part(label, least * cpu, least * gpu, (f"{prefix}.min_actors",) + knobs[1:])
    return Part(f"{prefix}.{count}={n} x {cpus}={cpus_text(cpu)}{gpu_text}", n * cpu, n * gpu, knobs)


def scoring_need(scoring) -> Need:
    """RDS: the scoring actor pool and a CPU for the parquet read tasks that feed it."""
    actors = _pool(scoring, "scoring", "num_actors", "actor_num_cpus", "num_gpus_per_actor")
    return Need("scoring", (actors, Part(f"{cpus_text(READ_TASK_CPUS)} for Ray Data's read tasks", READ_TASK_CPUS)))


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
        f"{what} stalled: it needs {need.describe()} ({cpus_text(need.cpus)}) and the cluster has not given it that; "
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
        fit = trials if cluster_cpus is None else max(1, math.floor(cluster_cpus / sweep.trial_cpus + EPS))
        concurrent, knob = min(trials, fit), "sweep.max_concurrent_trials"
        count = f"{concurrent} concurrent trials (sweep.max_concurrent_trials null)"
    gpu = f", trial_gpus={num_text(sweep.trial_gpus)} GPU" if sweep.trial_gpus else ""
    drivers = Part(
        f"{count} x trial_cpus={cpus_text(sweep.trial_cpus)}{gpu} for trial drivers",
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
