"""The run's worker threads: one per (role, arm) trains and then evaluates; one evaluates the base model.

As many train at once as the cluster can place next to one evaluation
(``training_slots``); evaluations run one at a time, each already spread over
``evaluation.num_actors`` actors. Every thread puts ``(job, value, error)`` on
one queue; the driver thread reads it and is the only one that logs.
The threads are daemons: stopping the driver stops its Ray work too.
"""

from __future__ import annotations

import logging
import queue
import threading

from sarft_ray.orchestration import stages
from sarft_ray.orchestration.arms import Arm
from sarft_ray.orchestration.comparison import BASE

log = logging.getLogger(__name__)


def training_slots(cfg, runs: int, nodes: list[dict] | None = None) -> int:
    """How many training runs (roles, or role and arm pairs) can run at once, at least 1.

    Whole worker groups that fit the cluster once one evaluation (its Ray Data
    actors) has its share, so evaluations never wait behind every training
    and trainings never wait for placement.
    """
    from sarft_ray.training.ray_trainer import placeable_workers

    if nodes is None:
        import ray

        nodes = ray.nodes()
    nodes = [{**n, "Resources": dict(n.get("Resources", {}))} for n in nodes if n.get("Alive", True)]
    ev = cfg.evaluation
    if ev.backend == "ray" and nodes:
        largest = max(nodes, key=lambda n: n.get("Resources", {}).get("CPU", 0.0))["Resources"]
        largest["CPU"] = largest.get("CPU", 0.0) - ev.num_actors * ev.actor_num_cpus
        largest["GPU"] = largest.get("GPU", 0.0) - ev.num_actors * ev.actor_num_gpus
    fits = placeable_workers(nodes, cfg.training.cpus_per_worker, cfg.training.gpus_per_worker)
    return max(1, min(runs, fits // cfg.training.workers))


def _arm_worker(
    cfg, role: str, arm: Arm, force: bool, train_gate, eval_gate, results: queue.Queue, steps=None, scores=None
) -> None:
    job = (role, arm.name)
    try:
        arm_cfg = arm.config(cfg)
        with train_gate:
            # each training step reaches the driver as it happens (progress.StepRelay), for MLflow and the bar
            summary = stages.train(arm_cfg, role, scores, force=force, on_step=steps.sender(job) if steps else None)
        with eval_gate:
            evaluated = stages.evaluate(arm_cfg, role, summary, force=force)
        results.put((job, (summary, evaluated), None))
    except BaseException as exc:  # reported to the driver thread, which decides
        results.put((job, None, exc))


def _base_worker(cfg, force: bool, eval_gate, results: queue.Queue) -> None:
    try:
        with eval_gate:
            results.put((BASE, stages.evaluate(cfg, None, force=force), None))
    except BaseException as exc:
        results.put((BASE, None, exc))


def start_jobs(cfg, arms: list[Arm], force: bool, steps=None, scores=None) -> tuple[list[tuple[str, Arm]], queue.Queue]:
    """Start the base model's thread and one per (role, arm); returns the (role, arm) jobs and the results queue.

    ``steps`` (a ``progress.StepRelay``) receives every training step, keyed by (role, arm name). Every
    run trains from ``scores`` (the scoring stage's ``StoredScores``; arms change only training settings,
    so they share them; None: each run finds them from the config).
    """
    # transformers 5 resolves its names lazily, and two threads resolving one at once can fail with "cannot
    # import name 'AutoConfig'": resolve here, before the threads (a re-run that reuses scores imports nothing before).
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    jobs = [(role, arm) for role in cfg.roles.names for arm in arms]
    slots = min(training_slots(arm.config(cfg), len(jobs)) for arm in arms)
    log.info("training up to %d run(s) at once", slots)
    train_gate, eval_gate = threading.BoundedSemaphore(slots), threading.BoundedSemaphore(1)
    queued: queue.Queue = queue.Queue()
    threading.Thread(target=_base_worker, args=(cfg, force, eval_gate, queued), daemon=True).start()
    for role, arm in jobs:
        args = (cfg, role, arm, force, train_gate, eval_gate, queued, steps, scores)
        threading.Thread(target=_arm_worker, args=args, daemon=True).start()
    return jobs, queued
