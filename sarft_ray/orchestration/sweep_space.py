"""The sweep's settings: its section, the evaluation trials are judged with, Tune's search space and the sweep's name.

Pure functions of the experiment config (Ray Tune is imported only to build
the search space); ``sweep.py`` drives the sweep with them.
"""

from __future__ import annotations

from typing import Any

from sarft_ray.errors import SarftError
from sarft_ray.evaluation.catalogue import headline_keys as catalogue_keys
from sarft_ray.orchestration import stages


def sweep_section(cfg):
    sweep = getattr(cfg, "sweep", None)
    if sweep is None:
        raise SarftError(f"{cfg.source or 'config'}: no 'sweep' section; add one to run a sweep")
    return sweep


def trial_evaluation(cfg):
    """The config trials are evaluated with: ``sweep.evaluation`` in place of the evaluation section, when set.

    Only evaluation changes: scoring and training keep the experiment's own
    section, so the training corpus holds out exactly what ``run`` holds out.
    """
    sweep = sweep_section(cfg)
    return cfg if sweep.evaluation is None else cfg.with_updates(evaluation=sweep.evaluation)


def check_sweep(cfg) -> None:
    """Checks that need the whole config: swept roles exist, objective metrics are ones evaluation reports."""
    from sarft_ray.data.roles import match_role

    sweep = sweep_section(cfg)
    source = str(cfg.source or "config")
    if "role" in sweep.space:
        for value in sweep.space["role"].values:
            match_role(str(value), cfg.roles.names, f"{source}: sweep.space.role")
    known = headline_keys(cfg)
    for where, metric in [("sweep.objective.metric", sweep.objective.metric)] + [
        (f"sweep.objective.constraints[{i}].metric", c.metric) for i, c in enumerate(sweep.objective.constraints)
    ]:
        if metric not in known:
            raise SarftError(f"{source}: {where}: unknown metric '{metric}'; this config reports {', '.join(known)}")
    for i, c in enumerate(sweep.objective.constraints):
        for key, value in (c.relative_to or {}).items():
            where = f"{source}: sweep.objective.constraints[{i}].relative_to.{key}"
            if key not in sweep.space:
                raise SarftError(f"{where}: '{key}' is not swept (sweep.space has {', '.join(sweep.space)})")
            if sweep.space[key].values is not None and value not in sweep.space[key].values:
                raise SarftError(f"{where}: no trial has {key}={value} (sweep.space.{key}: {sweep.space[key].values})")


def headline_keys(cfg) -> list[str]:
    """The evaluation headline figures this config's benchmarks produce."""
    ev = trial_evaluation(cfg).evaluation
    return catalogue_keys(ev.benchmarks, ev.jailbreaks)


def search_space(cfg) -> dict[str, Any]:
    """The sweep section as Tune's ``param_space``; ``role`` defaults to a grid over every configured role."""
    from ray import tune

    from sarft_ray.data.roles import match_role

    sweep = sweep_section(cfg)
    space: dict[str, Any] = {}
    for key, dim in sweep.space.items():
        if dim.grid is not None:
            values = dim.grid
            if key == "role":
                values = [match_role(str(v), cfg.roles.names, "sweep.space.role") for v in values]
            space[key] = tune.grid_search(values)
        elif dim.choice is not None:
            values = dim.choice
            if key == "role":
                values = [match_role(str(v), cfg.roles.names, "sweep.space.role") for v in values]
            space[key] = tune.choice(values)
        elif dim.uniform is not None:
            space[key] = tune.uniform(*dim.uniform)
        else:
            space[key] = tune.loguniform(*dim.loguniform)
    space.setdefault("role", tune.grid_search(list(cfg.roles.names)))
    return space


def sweep_name(cfg) -> str:
    """``sweep.name``, or ``sweep-<hash>`` of what decides the trials (not resources or the objective)."""
    sweep = sweep_section(cfg)
    return sweep.name or f"sweep-{sweep_key(cfg)}"


def sweep_key(cfg) -> str:
    sweep = sweep_section(cfg)
    trials = stages.without_operational(sweep.model_dump(mode="json", include={"space", "num_samples", "seed", "evaluation"}))
    return stages.results_key(cfg, trials)
