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

On a multi-node cluster ``output_root`` must be on storage every node can read
(the staged corpus is read by Ray tasks wherever they run).
"""

from __future__ import annotations

import logging
import re
import sys

import pyarrow as pa
import pyarrow.compute as pc

from sarft_ray.data.prompts import RolePrompts
from sarft_ray.errors import SarftError
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


_REMOTE_SARFT_ERROR = re.compile(r"SarftError: (.+)")


def user_error(exc: BaseException) -> SarftError | None:
    """The SarftError behind a failure inside a Ray Data actor, if that is what it was.

    Ray Data reports a failing UDF as ``RayTaskError(UserCodeException)`` whose
    text holds the remote traceback but not the original exception object, so
    the error's last ``SarftError: ...`` line is recovered from that text.
    """
    seen = set()
    stack = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, SarftError):
            return SarftError(str(item).splitlines()[0])
        found = _REMOTE_SARFT_ERROR.findall(str(item))
        if found:
            return SarftError(found[-1].strip())
        stack += [getattr(item, "cause", None), item.__cause__, item.__context__]
    return None


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
    from tqdm import tqdm

    from sarft_ray.data.roles import role_slug

    roles = list(staged.files)
    ds = ray.data.read_parquet([str(staged.files[r]) for r in roles], partitioning=None)
    ds.context.execution_options.preserve_order = True  # deterministic row order in the output files
    ds.context.max_errored_blocks = 0  # a batch that fails to score fails the job
    ds.context.enable_progress_bars = False  # the driver's bar below counts samples
    ds = ds.map_batches(
        ScoreActor,
        fn_constructor_kwargs={"model": model, "prompts": prompts, "scoring": scoring, "scores_hash": scores_hash},
        compute=ray.data.ActorPoolStrategy(size=scoring.num_actors),
        num_cpus=scoring.actor_num_cpus,
        num_gpus=scoring.num_gpus_per_actor,
        batch_size=scoring.rows_per_call,
        batch_format="pyarrow",
    )
    tally = {role: RoleAccumulator(role, role_slug(role)) for role in roles}
    bar = tqdm(total=staged.total, desc="RDS scoring", unit="sample", disable=not progress, file=sys.stderr)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for role, part in split_by_role(batch):
                if role not in tally:
                    raise RuntimeError(f"scored a row of an unexpected role '{role}'")
                writer.write(role, part)
                tally[role].update(part)
            bar.update(batch.num_rows)
    except Exception as exc:
        cause = user_error(exc)
        if cause is not None:
            raise cause from None
        raise
    finally:
        bar.close()
    return tally

