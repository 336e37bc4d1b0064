"""The steps ``run`` and ``sweep`` share: train a role, evaluate what it produced, read per-role figures.

Each stage caches its own outputs (scores by content hash, training runs by
``train/<role>/<run-hash>/summary.json``, generations per model hash), so
calling these again with the same inputs only reads stored results.
"""

from __future__ import annotations

from typing import Any

from sarft_ray.config import config_hash
from sarft_ray.config_base import without_added_defaults

# Sections that change where or how a run executes, not what it computes.
OPERATIONAL_SECTIONS = ("tracking", "ray", "sweep")
# What `run` compares: part of its key only (passed as an extra part), never of a sweep's.
COMPARISON_KEYS = ("arms", "compare_to")

# Per-step training metrics the recipe reports, logged to MLflow as train/<name>.
TRAIN_STEP_KEYS = ("loss", "ce", "kl", "harmful_rows", "rows", "tokens", "tokens_per_s", "step_time_s", "lr", "epoch")


def results_key(cfg, *extra: Any) -> str:
    """Hash of the resolved config minus operational sections, operational fields and the comparison keys, plus
    ``extra`` parts: a config moved to a machine with other threads, actors or checkpoint cadence finds its run's
    MLflow record and its sweep again."""
    resolved = {k: v for k, v in cfg.resolved().items() if k not in OPERATIONAL_SECTIONS + COMPARISON_KEYS}
    return config_hash(*without_added_defaults([without_operational(resolved), *extra]))


def without_operational(sections: dict) -> dict:
    """Dumped config ``sections`` (any of them) without each section's operational fields."""
    from sarft_ray.evaluation.config import OPERATIONAL_FIELDS as EVALUATION
    from sarft_ray.scoring.config import OPERATIONAL_FIELDS as SCORING
    from sarft_ray.training.config import NOT_HASHED as TRAINING

    def drop(section: Any, fields: tuple[str, ...]) -> Any:
        return {k: v for k, v in section.items() if k not in fields} if isinstance(section, dict) else section

    out = dict(sections)
    for name, fields in (("training", TRAINING), ("evaluation", EVALUATION), ("scoring", SCORING)):
        if name in out:
            out[name] = drop(out[name], fields)
    if isinstance(out.get("alignment"), dict) and "training" in out["alignment"]:
        out["alignment"] = out["alignment"] | {"training": drop(out["alignment"]["training"], TRAINING)}
    return out


def train(cfg, role: str, scores=None, force: bool = False, **overrides) -> dict:
    """Train ``role`` (Ray Train) from ``scores`` (the scoring stage's ``StoredScores``) with training-section
    ``overrides``; the summary with ``artefact`` and ``run_dir``."""
    from sarft_ray.training.entry import train_role

    return train_role(cfg, role, scores=scores, force=force, **overrides)


def evaluate(cfg, role: str | None, summary: dict | None = None, force: bool = False):
    """Evaluate the trained artefact of ``summary`` on ``role``, or the base model on every role when None."""
    from sarft_ray.evaluation.runner import evaluate_model

    roles = [role] if role is not None else list(cfg.roles.names)
    if summary is None:
        return evaluate_model(cfg, roles=roles, force=force)
    artefact = summary["artefact"]
    if summary.get("mode") == "full":
        return evaluate_model(cfg, model=artefact, roles=roles, force=force)
    return evaluate_model(cfg, adapter=artefact, roles=roles, force=force)


def role_headline(table: dict, role: str) -> dict[str, float | None]:
    """The headline row of one role from an evaluation table.

    RoleBench figures are the role's own; refusal rates are the role's where
    the items were asked with its prompt, else the benchmark's overall rate.
    """
    from sarft_ray.evaluation.report import headline

    benchmarks: dict[str, dict] = {}
    for name, summary in table["benchmarks"].items():
        if "refusal_rate" in summary:
            benchmarks[name] = summary.get("per_role", {}).get(role, summary)
        else:
            per_role = summary.get("per_role", {}).get(role)
            if per_role is not None:
                benchmarks[name] = per_role
    return headline(benchmarks)


def role_verdicts(table: dict, role: str | None) -> dict:
    """Refusals and valid verdicts per safety benchmark for ``role`` (None: overall), as ``role_headline`` picks them.

    Each count's source names the evaluation and the scope (the role, or
    ``all`` where the items were asked without role prompts), so a mean over
    roles counts shared verdicts once.
    """
    from sarft_ray.orchestration.comparison import Verdicts

    model = table.get("model", {}).get("hash", "?")
    out = {}
    for name, summary in table["benchmarks"].items():
        if "refusal_rate" not in summary:
            continue
        scoped = summary.get("per_role", {}).get(role) if role is not None else None
        counts, scope = (scoped, role) if scoped is not None else (summary, "all")
        valid = counts["n_refusal"] + counts["n_compliance"]
        out[name] = Verdicts(counts["n_refusal"], valid, f"{model}/{name}/{scope}")
    return out


def train_brief(summary: dict) -> dict[str, Any]:
    """The training summary without its per-step history (for tables and stage records)."""
    return {k: v for k, v in summary.items() if k != "history"}
