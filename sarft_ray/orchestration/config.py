"""The ``sweep`` section of an experiment config (``arms`` / ``compare_to`` for ``run``: ``arms_config``).

The sweep: a Ray Tune search space declared in YAML::

    sweep:
      space:
        lambda_kl: {grid: [0.0, 0.5, 1.0]}     # or {uniform: [0, 2]}, {loguniform: [...]}, {choice: [...]}
        selection: [rds, none]                 # a plain list is a grid
        lr: {loguniform: [1.0e-5, 1.0e-3]}
        role: [John Doe]                       # default: every role of roles.names
      num_samples: 1
      trial_cpus: 0.5
      max_concurrent_trials: 2
      objective:
        metric: safety_avg
        mode: max
        constraints: [{metric: rolebench_spe_rouge_l_first, min: 10}]   # or relative: {..., min: -1, relative_to: {lambda_kl: 0}}

Keys of ``space`` are ``role`` or a field of the ``training`` section.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sarft_ray.config_base import StrictModel
from sarft_ray.evaluation.catalogue import SAFETY
from sarft_ray.evaluation.config import EvaluationConfig
from sarft_ray.training.config import SHARED_WITH_SCORING, TrainingConfig

_KINDS = ("grid", "choice", "uniform", "loguniform")


class ParamSpace(StrictModel):
    """One dimension: exactly one of ``grid`` (every value), ``choice`` (sampled), ``uniform``, ``loguniform``."""

    grid: list[Any] | None = Field(default=None, min_length=1)
    choice: list[Any] | None = Field(default=None, min_length=1)
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        # ``selection: [rds, none]`` means a grid; a bare scalar is a one-value grid.
        if isinstance(value, list):
            return {"grid": value}
        if not isinstance(value, dict):
            return {"grid": [value]}
        return value

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_KINDS)}")
        for kind in ("uniform", "loguniform"):
            bounds = getattr(self, kind)
            if bounds is not None:
                low, high = bounds
                if not low < high:
                    raise ValueError(f"{kind}: lower bound must be below upper bound, got [{low}, {high}]")
                if kind == "loguniform" and low <= 0:
                    raise ValueError(f"loguniform: bounds must be > 0, got [{low}, {high}]")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _KINDS if getattr(self, k) is not None)

    @property
    def values(self) -> list[Any] | None:
        """The listed values (grid or choice); None for a continuous range."""
        return self.grid if self.grid is not None else self.choice


class Constraint(StrictModel):
    """A bound an evaluation metric must meet for a trial to count as best.

    With ``relative_to`` the bounds are offsets from the metric of the same role's trial with those settings:
    ``{metric: rolebench_val_rouge_l_first, min: -1, relative_to: {lambda_kl: 0}}`` admits trials whose role
    quality is at most one point below plain SFT's.
    """

    metric: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None
    relative_to: dict[str, float | int | str | bool] | None = Field(
        default=None, min_length=1, description="swept settings of the trial the bounds are offsets from (same role)"
    )

    @model_validator(mode="after")
    def _has_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self

    def holds(self, value: float | None, reference: float | None = None) -> bool:
        """Whether ``value`` is within bounds (offsets from ``reference`` when ``relative_to`` is set)."""
        if value is None or (self.relative_to is not None and reference is None):
            return False
        base = reference if self.relative_to is not None else 0.0
        return (self.min is None or value >= base + self.min) and (self.max is None or value <= base + self.max)

    def text(self) -> str:
        """``rolebench_spe_rouge_l_first >= 10``; relative: ``... >= (lambda_kl=0) - 1``."""
        ref = "(" + ", ".join(f"{k}={v}" for k, v in self.relative_to.items()) + ") " if self.relative_to else ""

        def bound(op: str, value: float | None) -> str:
            if value is None:
                return ""
            return f"{op} {ref}{'+ ' if value >= 0 else '- '}{abs(value):g}" if ref else f"{op} {value:g}"

        return f"{self.metric} " + " and ".join(b for b in (bound(">=", self.min), bound("<=", self.max)) if b)

    def reference_row(self, rows: list[dict]) -> dict | None:
        """Of one role's trials, the first whose settings match ``relative_to`` (None: none does, or not relative)."""
        if self.relative_to is None:
            return None
        return next((r for r in rows if all(r.get(k) == v for k, v in self.relative_to.items())), None)


class Objective(StrictModel):
    """How the best trial of each role is chosen: ``metric`` (an evaluation headline key) under ``constraints``."""

    metric: str = Field(default=SAFETY, min_length=1)
    mode: Literal["max", "min"] = "max"
    constraints: list[Constraint] = Field(default_factory=list)


class SweepConfig(StrictModel):
    """A Ray Tune sweep: every trial trains one role with the sampled settings and evaluates it."""

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Tune run name (its directory under <experiment>/sweeps); null: sweep-<hash of the settings>",
    )
    space: dict[str, ParamSpace] = Field(min_length=1)
    num_samples: int = Field(default=1, ge=1, description="repeats of the grid; samples per grid point for ranges")
    seed: int = Field(default=0, description="seed of the sampler for choice/uniform/loguniform")
    trial_cpus: float = Field(default=0.5, gt=0, description="CPUs held by each trial's driver (fractional is fine)")
    trial_gpus: float = Field(default=0.0, ge=0)
    max_concurrent_trials: int | None = Field(default=2, ge=1, description="null: as many as resources allow")
    max_failures: int = Field(default=0, ge=0, description="times Tune retries a failed trial")
    objective: Objective = Objective()
    evaluation: EvaluationConfig | None = Field(
        default=None,
        description="what trials are judged on (a whole evaluation section), e.g. validation items only; "
        "null: the experiment's evaluation section",
    )

    @field_validator("space")
    @classmethod
    def _known_keys(cls, space: dict[str, ParamSpace]) -> dict[str, ParamSpace]:

        known = {"role"} | set(TrainingConfig.model_fields)
        unknown = sorted(k for k in space if k not in known)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}: use 'role' or a field of the training section")
        shared = sorted(k for k in space if k in SHARED_WITH_SCORING)
        if shared:
            raise ValueError(f"{shared}: scoring uses the same lengths as training, so they cannot vary per trial")
        for key, dim in space.items():
            if key == "role" and dim.values is None:
                raise ValueError("role: list the roles with grid or choice")
            if dim.values is None and key != "role" and TrainingConfig.model_fields[key].annotation is not float:
                raise ValueError(f"{key}: {dim.kind} needs a float field; list the values with grid or choice")
            checked = dim.values if dim.values is not None else list(getattr(dim, dim.kind))
            for value in checked:
                if key != "role":
                    try:
                        TrainingConfig.model_validate({key: value})
                    except ValueError as exc:
                        first = exc.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(exc, "errors") else str(exc)
                        raise ValueError(f"{key}: bad value {value!r}: {first}") from None
        return space

    def overrides_keys(self) -> list[str]:
        """The training fields the sweep varies."""
        return [k for k in self.space if k != "role"]
