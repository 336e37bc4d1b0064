"""Where scores live, what identifies them, and how they are written and read back.

Layout (every directory appears whole: it is built under a temporary name and renamed)::

    <output_root>/<experiment>/scores/<hash>/
        role=<slug>/part-0.parquet      one file per role, SCORES_SCHEMA
        summary.json                    per-role RoleStats + the inputs that made them
        harmful_fraction.png

``<hash>`` covers what decides the numbers: the corpus files' bytes and
selection settings, the evaluation questions held out of the corpus, the
resolved role and unsafe prompts, the model, the precision it runs in (dtype
and device kind: bf16 GPU scores are not fp32 CPU scores) and the scoring
settings that change results. Batch size, actor counts and prefix reuse only
change speed, so they are left out.

Reading the whole directory with hive partitioning would clash with the
``role`` column (``role=<slug>`` vs the role's name): ``load_scores`` reads the
files directly; other readers should pass ``partitioning=None``.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from sarft_ray.data.roles import role_slug
from sarft_ray.errors import SarftError
from sarft_ray.hashing import file_digest, json_digest
from sarft_ray.scoring.schema import SCORES_SCHEMA

if TYPE_CHECKING:
    from sarft_ray.config import ExperimentConfig
    from sarft_ray.data.heldout import HeldOutQuestions

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: held-out questions removed, seeded corpus sample, explicit empty system turn
SUMMARY_NAME = "summary.json"
CHART_NAME = "harmful_fraction.png"
PART_NAME = "part-0.parquet"


def experiment_heldout(cfg: ExperimentConfig) -> HeldOutQuestions:
    """The questions this experiment's evaluation asks, which its training corpus must not hold."""
    from sarft_ray.evaluation.benchmarks import heldout_questions

    return heldout_questions(cfg.evaluation, list(cfg.roles.names), cfg.roles.corpus)


def scoring_inputs(cfg: ExperimentConfig, prompts: dict, heldout: HeldOutQuestions) -> dict:
    """Everything that determines the stored scores, as JSON-able data."""
    from sarft_ray.models.identity import model_identity
    from sarft_ray.models.loading import dtype_name

    corpus = cfg.roles.corpus
    scoring = cfg.scoring
    return {
        "format_version": FORMAT_VERSION,
        "model": model_identity(cfg.model),
        "precision": {"device": scoring.device, "dtype": dtype_name(cfg.model.dtype, scoring.device)},
        "roles": list(cfg.roles.names),
        "corpus": {
            "format": corpus.format,
            # Content and the names that sample ids are built from, not the absolute path:
            # the same data mounted elsewhere keeps its scores.
            "files": [
                [Path(f.path).parent.name, Path(f.path).name, f.role, file_digest(f.path) if Path(f.path).exists() else None]
                for f in corpus.paths
            ],
            "test_fraction": corpus.test_fraction,
            "split_seed": corpus.split_seed,
            "validation_fraction": corpus.validation_fraction,
            "max_samples_per_role": corpus.max_samples_per_role,
            "sample_seed": corpus.sample_seed,
            "heldout_questions": heldout.digest(),
        },
        "prompts": {role: [p.role_prompt, p.unsafe_prompt] for role, p in prompts.items()},
        "scoring": {
            "aggregate": scoring.aggregate,
            "reference_pass": scoring.reference_pass,
            "max_source_tokens": scoring.max_source_tokens,
            "max_target_tokens": scoring.max_target_tokens,
            "splits": sorted(scoring.splits),
        },
    }


def inputs_hash(inputs: dict) -> str:
    """The scores directory's name: a digest of the one-element list ``[inputs]`` (how stored scores are named)."""
    return json_digest([inputs], 16)


def scores_root(cfg: ExperimentConfig) -> Path:
    return Path(cfg.output_root) / cfg.experiment / "scores"


def role_dir(directory: Path, role: str) -> Path:
    return Path(directory) / f"role={role_slug(role)}"


def is_complete(directory: Path) -> bool:
    """A scores directory only exists once finished (it is renamed into place), summary last."""
    return (Path(directory) / SUMMARY_NAME).is_file()


class ScoresWriter:
    """Builds a scores directory under a temporary name next to its final place."""

    def __init__(self, final: Path):
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.parent / f".tmp-{self.final.name}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._writers: dict[str, pq.ParquetWriter] = {}

    def write(self, role: str, table: pa.Table) -> None:
        writer = self._writers.get(role)
        if writer is None:
            target = role_dir(self.tmp, role)
            target.mkdir()
            writer = self._writers[role] = pq.ParquetWriter(target / PART_NAME, SCORES_SCHEMA)
        writer.write_table(table)

    def close_files(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def commit(self) -> Path:
        """Move the finished directory into place, replacing an older one (``--force``)."""
        self.close_files()
        old = None
        if self.final.exists():
            old = self.final.parent / f".old-{self.final.name}-{uuid.uuid4().hex[:8]}"
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def abort(self) -> None:
        for writer in self._writers.values():
            try:
                writer.close()
            except Exception as exc:  # noqa: BLE001 - best effort while already failing
                log.debug("closing a parquet writer while aborting: %s", exc)
        self._writers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_role_scores(directory: Path, role: str) -> pa.Table:
    """One role's stored scores in corpus order."""
    target = role_dir(directory, role)
    files = sorted(target.glob("*.parquet"))
    if not files:
        raise SarftError(f"{target}: no scores for role '{role}'")
    table = pa.concat_tables(pq.read_table(f, partitioning=None, schema=SCORES_SCHEMA) for f in files)
    return table.sort_by("row_index")


@dataclass(frozen=True)
class StoredScores:
    """A complete scores directory and the hash of the inputs that made it: what scoring hands to training.

    The pipeline and the sweep pass the one their scoring stage returned, so
    training reads its rows directly; without one, training finds it itself
    (``find_scores``: the prompts are read, the held-out questions gathered
    and every corpus file hashed).
    """

    directory: Path
    scores_hash: str

    def role(self, role: str) -> pa.Table:
        """One role's stored scores (every scored split), in corpus order."""
        return read_role_scores(self.directory, role)


def find_scores(cfg: ExperimentConfig) -> StoredScores:
    """The complete scores directory for this config's inputs, or a SarftError saying how to make it."""
    from sarft_ray.data import load_role_prompts

    prompts = load_role_prompts(cfg.roles.prompts, cfg.roles.names)
    digest = inputs_hash(scoring_inputs(cfg, prompts, experiment_heldout(cfg)))
    directory = scores_root(cfg) / digest
    if not is_complete(directory):
        raise SarftError(f"no stored scores for this config (looked in {directory}); run `sarft-ray score CONFIG` first")
    return StoredScores(directory, digest)


def load_scores(cfg: ExperimentConfig, role: str, scores: StoredScores | None = None) -> pa.Table:
    """Stored scores of one configured role (every scored split), in corpus order; ``scores``: where they are
    (None: found from the config's inputs)."""
    from sarft_ray.data.roles import match_role

    name = match_role(role, cfg.roles.names, "roles.names")
    if scores is None:
        try:
            scores = find_scores(cfg)
        except SarftError:
            raise SarftError(
                f"no stored scores for role '{name}' under {scores_root(cfg)}; run `sarft-ray score CONFIG` first"
            ) from None
    return scores.role(name)


def load_training_set(
    cfg: ExperimentConfig, role: str, selection: str, seed: int | None = None, scores: StoredScores | None = None
) -> pa.Table:
    """The role's training rows (split ``train``) with ``is_harmful`` set by ``selection``.

    ``seed`` (for ``random``) defaults to ``scoring.selection_seed``; ``scores``
    is where the scores are (None: found from the config's inputs).
    """
    from sarft_ray.scoring.selection import select_training_rows

    seed = cfg.scoring.selection_seed if seed is None else seed
    table = select_training_rows(load_scores(cfg, role, scores), selection, seed)
    if table.num_rows == 0:
        raise SarftError(f"role '{role}': stored scores hold no 'train' rows (scoring.splits is {cfg.scoring.splits})")
    return table
