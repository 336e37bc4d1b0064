"""The Ray layer of RDS: staged corpus -> Ray Data actor pool -> per-role parquet on the driver.

- Input: the staged per-role parquet files (``staging.py``), read lazily by
  ``ray.data.read_parquet`` in role order, so the corpus never has to fit in
  memory: Ray Data's streaming executor keeps a bounded number of blocks in
  flight and the driver writes each scored batch as it arrives.
- ``map_batches`` runs ``ScoreActor`` on an ``ActorPoolStrategy`` pool: each
  actor loads the model once and keeps its roles' prefix caches. Actors take
  fractional CPUs (``scoring.actor_num_cpus``) so read tasks still get a CPU on
  small machines, and ``scoring.num_gpus_per_actor`` GPUs.
- A batch may straddle two roles at a file boundary; the actor scores each
  role's rows separately, so a forward pass never mixes roles.
- Every row must come back: the driver checks each role's count and row
  indices, and a failing row fails the job (``max_errored_blocks = 0``).
- Nothing waits forever or retries without end: the pool must fit the cluster
  next to a read task (``capacity.py``), an actor that fails to start or dies
  is not restarted (``ACTOR_RESTARTS``), and the driver gives up when no batch
  arrives for ``SARFT_RAY_STALL_TIMEOUT_S``. Failures reach the CLI as one line.

On a multi-node cluster ``output_root`` must be on storage every node can read
(the staged corpus is read by Ray tasks wherever they run).
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc

from sarft_ray.data.prompts import RolePrompts
from sarft_ray.ray_utils import (  # noqa: F401 - user_error: re-exported
    ACTOR_RESTARTS,
    actor_pool,
    bounded_batches,
    is_ray_error,
    ray_failure,
    remote_args_allowed,
    user_error,
)
from sarft_ray.scoring.config import ScoringConfig
from sarft_ray.scoring.staging import StagedCorpus
from sarft_ray.scoring.store import ScoresWriter
from sarft_ray.scoring.summary import RoleAccumulator

log = logging.getLogger(__name__)


def split_by_role(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """The rows of each role in ``table`` (roles in order of first appearance)."""
    roles = table["role"].unique().to_pylist()
    if len(roles) == 1:
        return [(roles[0], table)]
    return [(role, table.filter(pc.equal(table["role"], role))) for role in roles]


class ScoreActor:
    """A Ray Data callable class: one model per actor, scores pyarrow batches of staged rows."""

    def __init__(self, model, prompts: dict[str, RolePrompts], scoring: ScoringConfig, scores_hash: str):
        import torch

        from sarft_ray.models import load_model_and_tokenizer
        from sarft_ray.scoring.core import PrefixCache

        device = scoring.device
        if device == "cpu":
            torch.set_num_threads(scoring.torch_threads or max(1, round(scoring.actor_num_cpus)))
        self.model, self.tokenizer = load_model_and_tokenizer(model, device)
        self.prompts = prompts
        self.scoring = scoring
        self.scores_hash = scores_hash
        self.prefixes = PrefixCache(self.model, self.tokenizer)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from sarft_ray.scoring.core import score_role_samples
        from sarft_ray.scoring.schema import scores_table

        pieces = []
        for role, part in split_by_role(batch):
            scores = score_role_samples(
                self.model,
                self.tokenizer,
                self.prompts[role],
                part["input"].to_pylist(),
                part["output"].to_pylist(),
                self.scoring,
                sample_ids=part["sample_id"].to_pylist(),
                prefixes=self.prefixes,
            )
            if scores.prefix_fallbacks:
                log.warning("role %s: %d prompt(s) did not start with the shared prefix; scored in full", role, scores.prefix_fallbacks)
            pieces.append(scores_table(part, scores.columns, self.scores_hash))
        out = pa.concat_tables(pieces)
        if out.num_rows != batch.num_rows:
            raise RuntimeError(f"scored {out.num_rows} rows of a batch of {batch.num_rows}")
        return out


def run_scoring(
    model,
    prompts: dict[str, RolePrompts],
    scoring: ScoringConfig,
    staged: StagedCorpus,
    writer: ScoresWriter,
    scores_hash: str,
    progress: bool = True,
) -> dict[str, RoleAccumulator]:
    """Score every staged row on the running Ray cluster; write and tally each role's rows."""
    import ray

    from sarft_ray.capacity import check_stage
    from sarft_ray.data.roles import role_slug
    from sarft_ray.progress import bar as progress_bar
    from sarft_ray.stage_needs import scoring_need, stalled

    need = scoring_need(scoring)
    check_stage([need])
    roles = list(staged.files)
    ds = ray.data.read_parquet([str(staged.files[r]) for r in roles], partitioning=None)
    ds.context.execution_options.preserve_order = True  # deterministic row order in the output files
    ds.context.max_errored_blocks = 0  # a batch that fails to score fails the job
    ds.context.enable_progress_bars = False  # the driver's bar below counts samples
    with remote_args_allowed():
        ds = ds.map_batches(
            ScoreActor,
            fn_constructor_kwargs={"model": model, "prompts": prompts, "scoring": scoring, "scores_hash": scores_hash},
            compute=actor_pool(scoring.num_actors, scoring.min_actors),
            num_cpus=scoring.actor_num_cpus,
            num_gpus=scoring.num_gpus_per_actor,
            batch_size=scoring.rows_per_call,
            batch_format="pyarrow",
            **ACTOR_RESTARTS,
        )
    tally = {role: RoleAccumulator(role, role_slug(role)) for role in roles}
    bar = progress_bar(staged.total, "RDS scoring", "sample", enabled=progress)  # on a terminal or with --verbose
    try:
        batches = ds.iter_batches(batch_size=None, batch_format="pyarrow")
        for batch in bounded_batches(batches, stalled(need, "RDS scoring")):
            for role, part in split_by_role(batch):
                if role not in tally:
                    raise RuntimeError(f"scored a row of an unexpected role '{role}'")
                writer.write(role, part)
                tally[role].update(part)
            bar.update(batch.num_rows)
    except Exception as exc:
        if not is_ray_error(exc):
            raise
        raise ray_failure(exc, f"{model.ref}: RDS scoring failed") from exc
    finally:
        bar.close()
    return tally
