"""``score_roles``: the RDS stage end to end (what ``sarft-ray score`` and ``jobs/score.py`` run)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sarft_ray.atomic import remove_stale
from sarft_ray.scoring.store import (
    CHART_NAME,
    SUMMARY_NAME,
    ScoresWriter,
    experiment_heldout,
    inputs_hash,
    is_complete,
    role_dir,
    scores_root,
    scoring_inputs,
)
from sarft_ray.scoring.summary import (
    RoleStats,
    plot_harmful_fraction,
    read_summary,
    write_summary,
)

if TYPE_CHECKING:
    from sarft_ray.config import ExperimentConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    """Where a scoring run's outputs are and what they say."""

    scores_hash: str
    directory: Path
    role_dirs: dict[str, Path]
    summary_path: Path
    chart_path: Path
    roles: dict[str, RoleStats]
    reused: bool
    seconds: float
    heldout_removed: dict[str, int]

    def lines(self) -> list[str]:
        """A short human-readable report, one line per role."""
        head = f"scores {'reused' if self.reused else 'written'}: {self.directory}"
        body = [
            f"  {s.role}: {s.harmful}/{s.samples} harmful ({100 * s.harmful_fraction:.1f}%); "
            f"{self.heldout_removed.get(s.role, 0)} evaluation question(s) held out of its corpus"
            for s in sorted(self.roles.values(), key=lambda s: -s.harmful_fraction)
        ]
        return [head, *body, f"summary: {self.summary_path}", f"chart: {self.chart_path}"]


def _result(directory: Path, reused: bool, seconds: float) -> ScoreResult:
    stats, meta = read_summary(directory / SUMMARY_NAME)
    return ScoreResult(
        scores_hash=meta["scores_hash"],
        directory=directory,
        role_dirs={role: role_dir(directory, role) for role in stats},
        summary_path=directory / SUMMARY_NAME,
        chart_path=directory / CHART_NAME,
        roles=stats,
        reused=reused,
        seconds=seconds,
        heldout_removed=dict(meta.get("heldout", {}).get("removed", {})),
    )


def score_roles(cfg: ExperimentConfig, force: bool = False, progress: bool = True) -> ScoreResult:
    """Score every configured role's corpus, or reuse stored scores made from the same inputs.

    Joins the Ray cluster named by ``ray.address`` / RAY_ADDRESS, or starts a
    local one, unless Ray is already initialised in this process.
    """
    from sarft_ray.capacity import check_stage
    from sarft_ray.stage_needs import scoring_need
    from sarft_ray.data import load_role_prompts
    from sarft_ray.preflight import check_model_loads
    from sarft_ray.scoring.ray_pipeline import run_scoring
    from sarft_ray.scoring.staging import stage_corpus

    from sarft_ray.alignment.stage import starting_config

    started = time.perf_counter()
    cfg = starting_config(cfg)
    prompts = load_role_prompts(cfg.roles.prompts, cfg.roles.names)
    heldout = experiment_heldout(cfg)
    inputs = scoring_inputs(cfg, prompts, heldout)
    digest = inputs_hash(inputs)
    final = scores_root(cfg) / digest
    removed = remove_stale(final.parent)  # what a killed run left there: a half-built scores directory
    if removed:
        log.info("removed %d leftover(s) of an interrupted run from %s", len(removed), final.parent)
    if is_complete(final) and not force:
        log.info("reusing scores in %s", final)
        return _result(final, reused=True, seconds=time.perf_counter() - started)

    # Fail on a pool the cluster cannot hold, or a model that does not load, here and in one line:
    # inside Ray either would end in a wait without end or in pages of actor tracebacks.
    need = [scoring_need(cfg.scoring)]
    check_stage(need, cfg.ray, cfg.source)  # a local cluster's size is known before it starts
    check_model_loads(cfg.model)  # also fetches/converts an alias once, before any actor loads it
    writer = ScoresWriter(final)
    try:
        staged = stage_corpus(
            cfg.roles.corpus, cfg.roles.names, cfg.scoring.splits, writer.tmp / "_staging", heldout=heldout
        )
        log.info(
            "held out of the training corpus: %d evaluation question(s) found in it (%s); %d question(s) held out in all",
            sum(staged.heldout_removed.values()),
            ", ".join(f"{role} {n}" for role, n in staged.heldout_removed.items()),
            len(heldout),
        )
        from sarft_ray.ray_utils import init_ray

        init_ray(cfg.ray)  # run_scoring checks the pool against what the running cluster has
        tally = run_scoring(cfg.model, prompts, cfg.scoring, staged, writer, digest, progress=progress)
        for role, expected in staged.counts.items():
            if not tally[role].exactly_once(expected):
                raise RuntimeError(
                    f"role '{role}': {tally[role].samples} scored rows for {expected} corpus rows "
                    "(rows lost or repeated); nothing was stored"
                )
        writer.close_files()
        shutil.rmtree(writer.tmp / "_staging")
        stats = {role: acc.stats() for role, acc in tally.items()}
        meta = {
            "scores_hash": digest,
            "experiment": cfg.experiment,
            "inputs": inputs,
            "heldout": {"questions": len(heldout), "by_source": heldout.sources, "removed": staged.heldout_removed},
        }
        write_summary(writer.tmp / SUMMARY_NAME, stats, meta)
        plot_harmful_fraction(stats, writer.tmp / CHART_NAME, title=f"{cfg.experiment}: RDS harmful fraction per role")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return _result(final, reused=False, seconds=time.perf_counter() - started)
