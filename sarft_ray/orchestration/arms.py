"""The arms of a ``run``: the methods trained on every role, each with its own training settings.

A config with an ``arms`` list has those arms; one without has a single arm
made from the ``training`` section, labelled as before (``rds lambda=0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Arm:
    """One method: its label, its training settings and what it changes in the training section."""

    name: str  # row label
    training: Any  # TrainingConfig
    overrides: dict[str, Any] = field(default_factory=dict)
    listed: bool = True  # False: the single arm of a config without ``arms``

    @property
    def metric_prefix(self) -> str:
        """Prefix of its figures on the parent MLflow run (``tuned/`` for the training-section arm)."""
        return f"arm/{self.name}/" if self.listed else "tuned/"

    def run_key(self, role_key: str) -> str:
        """Key of its MLflow run on one role, below the run's ``run/<hash>/role/<slug>``."""
        return f"{role_key}/arm/{self.name}" if self.listed else role_key

    def config(self, cfg):
        """The experiment config this arm trains with: its training settings in place of the section."""
        return cfg.with_updates(training=self.training)

    def describe(self) -> str:
        """``sarft: selection rds, lambda_kl 1, lr 0.0001``."""
        shown = self.overrides or {"selection": self.training.selection, "lambda_kl": self.training.lambda_kl}
        settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        return f"{self.name}: {settings}"


def resolve_arms(cfg) -> list[Arm]:
    """The config's arms with their training settings (the training section plus each arm's overrides)."""
    if not cfg.arms:
        training = cfg.training
        return [Arm(f"{training.selection} lambda={training.lambda_kl:g}", training, listed=False)]
    return [Arm(a.name, a.training(cfg.training), a.overrides()) for a in cfg.arms]


def compare_to(cfg) -> str | None:
    """The arm the others are compared with: ``compare_to``, else the first arm with selection none."""
    if cfg.compare_to is not None:
        return cfg.compare_to
    return next((a.name for a in resolve_arms(cfg) if a.training.selection == "none"), None)


def job_name(job, arms: list[Arm]) -> str:
    """``base`` (a job that is not a (role, arm) pair), the role (one unlisted arm) or ``role / arm``."""
    if not isinstance(job, tuple):
        return job
    role, arm = job
    return role if len(arms) == 1 and not arms[0].listed else f"{role} / {arm}"
