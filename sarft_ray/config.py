"""The experiment config: one YAML file describes model, roles, scoring, training,
evaluation, tracking and Ray resources.

``load_config`` expands ``${VAR}`` / ``${VAR:-default}`` in strings, resolves
relative paths against the config file's directory, and turns every
validation problem into one line such as
``configs/x.yaml: training.lambda_kl: must be >= 0, got -1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from sarft_ray.alignment.config import AlignmentConfig
from sarft_ray.config_base import ConfigPath, StrictModel
from sarft_ray.config_text import expand_env, format_validation_error
from sarft_ray.data.config import RolesConfig
from sarft_ray.data.readers import read_json_or_yaml
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.config import EvaluationConfig
from sarft_ray.models.config import ModelConfig
from sarft_ray.models.loading import alias_suggestion, ref_beside
from sarft_ray.orchestration.arms_config import Arms, CompareTo
from sarft_ray.orchestration.config import SweepConfig
from sarft_ray.paths import default_output_root, find_config
from sarft_ray.scoring.config import ScoringConfig
from sarft_ray.training.config import SHARED_WITH_SCORING, TrainingConfig


class TrackingConfig(StrictModel):
    """MLflow: ``null`` URI means a sqlite database under the experiment's output directory."""

    mlflow_uri: str | None = None
    experiment_name: str | None = None
    log_model: Literal["adapter", "all", "none"] = Field(
        default="adapter",
        description="trained weights uploaded to MLflow: a LoRA adapter (never a full model), any (all) or none",
    )


class RayConfig(StrictModel):
    """Where Ray runs: ``address`` null (and no RAY_ADDRESS) starts a local cluster."""

    address: str | None = None
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local cluster (null: all)")
    num_gpus: int | None = Field(default=None, ge=0)
    include_dashboard: bool = True
    storage_path: str | None = Field(
        default=None,
        description="Ray Train checkpoints on shared storage every node reaches: an absolute path or a URI "
        "(s3://, gs://, file://); null: each run's own directory (one machine)",
    )

    @field_validator("storage_path")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        from sarft_ray.storage import check_storage_path

        return None if value is None else check_storage_path(value)


class ExperimentConfig(StrictModel):
    """Everything one experiment needs; each section belongs to one stage."""

    experiment: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output_root: ConfigPath = Field(default_factory=default_output_root, description="absent: SARFT_OUTPUT_DIR, else ./runs")
    model: ModelConfig
    alignment: AlignmentConfig | None = Field(
        default=None, description="align model.ref for safety first; the aligned model is every stage's starting model"
    )
    roles: RolesConfig
    scoring: ScoringConfig = ScoringConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    tracking: TrackingConfig = TrackingConfig()
    ray: RayConfig = RayConfig()
    sweep: SweepConfig | None = Field(default=None, description="Ray Tune search space for `sarft-ray sweep`")
    arms: Arms = Field(default=None, description="methods `run` trains on every role (null: the training section)")
    compare_to: CompareTo = Field(default=None, description="arm the others are compared with (null: first selection none)")
    source: Path | None = Field(default=None, exclude=True, description="the file this config was read from")

    @model_validator(mode="before")
    @classmethod
    def _scoring_and_training_lengths_agree(cls, data):
        """RDS flags describe the answer tokens training learns: both stages cut questions and answers alike.

        A length set in one section only is used by both; set in both, the values must match.
        """
        if not isinstance(data, dict):
            return data
        scoring, training = data.get("scoring") or {}, data.get("training") or {}
        if not isinstance(scoring, dict) or not isinstance(training, dict):
            return data
        scoring, training = dict(scoring), dict(training)
        for name in SHARED_WITH_SCORING:
            if name in scoring and name in training and scoring[name] != training[name]:
                raise ValueError(
                    f"training.{name}: {training[name]} differs from scoring.{name}: {scoring[name]}; "
                    "RDS must score the tokens training learns, so set one value (either section)"
                )
            if name in scoring:
                training.setdefault(name, scoring[name])
            elif name in training:
                scoring[name] = training[name]
        return {**data, "scoring": scoring, "training": training}

    @model_validator(mode="after")
    def _alignment_prompts_are_not_evaluated(self):
        if self.alignment is not None and self.evaluation.beavertails_split.use == "all":
            raise ValueError(
                "evaluation.beavertails_split.use: alignment trains on BeaverTails prompts, so evaluation must ask "
                "only the held-out part: set it to test (or validation)"
            )
        return self

    @field_validator("model")
    @classmethod
    def _model_path_beside_config(cls, model: ModelConfig, info: ValidationInfo) -> ModelConfig:
        """A relative ``model.ref`` path means the same model wherever the command runs from."""
        base = (info.context or {}).get("base_dir")
        if base is None:
            return model
        ref = ref_beside(model.ref, base)
        return model if ref == model.ref else model.model_copy(update={"ref": ref})

    @model_validator(mode="after")
    def _model_alias_spelled_right(self):
        # a near-miss of an alias would otherwise go to the model hub and fail only after its retries
        suggestion = None if Path(self.model.ref).expanduser().exists() else alias_suggestion(self.model.ref)
        if suggestion:
            raise ValueError(
                f"model.ref: '{self.model.ref}' is not a model alias or an existing path (did you mean '{suggestion}'?)"
            )
        return self

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: RolesConfig) -> RolesConfig:
        from sarft_ray.data.roles import role_key

        keys = [role_key(n) for n in roles.names]
        dupes = sorted({n for n, k in zip(roles.names, keys, strict=True) if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"role listed twice: {', '.join(dupes)}")
        return roles

    @property
    def experiment_dir(self) -> Path:
        """``<output_root>/<experiment>``: every artefact of this experiment lives below it."""
        return Path(self.output_root) / self.experiment

    def resolved(self) -> dict[str, Any]:
        """The config as plain JSON-able data (paths absolute)."""
        return self.model_dump(mode="json")

    def with_updates(self, **sections: Any) -> ExperimentConfig:
        """A copy with some sections replaced, e.g. ``training=cfg.training.model_copy(update=...)``."""
        return self.model_copy(update=sections)


def parse_config(data: Any, source: str, base_dir: Path) -> ExperimentConfig:
    """Validate an already-parsed YAML tree."""
    if not isinstance(data, dict):
        raise SarftError(f"{source}: expected a mapping at the top level")
    env_used: dict[str, str] = {}
    try:
        data = expand_env(data, used=env_used)
    except SarftError as exc:
        raise SarftError(f"{source}: {exc}") from None
    try:
        return ExperimentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise SarftError(format_validation_error(source, exc, env_used)) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read and validate an experiment YAML file, and check the file system it names before any work starts.

    Beyond ``parse_config``: the output directory must be writable (or
    creatable) and no input file the config names may be a directory. Nothing
    is written; files that do not exist are reported by whoever reads them
    (``sarft-ray validate`` reads them all). ``overrides`` are ``--set``
    strings (``training.lambda_kl=3``), applied to the file's tree before it is
    validated (``config_overrides.py``).
    """
    from sarft_ray.config_overrides import apply_overrides, parse_override

    parsed = [parse_override(text) for text in overrides]  # a malformed --set fails before the file is read
    path = find_config(path)  # a bare name such as `demo` is a config shipped in the package
    data = read_json_or_yaml(path)
    if parsed:
        if not isinstance(data, dict):
            raise SarftError(f"{path}: expected a mapping at the top level")
        data = apply_overrides(data, parsed, str(path))
    cfg = parse_config(data, str(path), path.resolve().parent)
    check_file_system(cfg, str(path))
    return cfg.model_copy(update={"source": path.resolve()})


def input_files(cfg: ExperimentConfig) -> list[tuple[str, Path]]:
    """``(field, path)`` for every file (not directory) the config names as an input."""
    named: list[tuple[str, Path | None]] = [
        *((f"roles.corpus.paths[{i}]", item.path) for i, item in enumerate(cfg.roles.corpus.paths)),
        ("roles.prompts.path", cfg.roles.prompts.path),
        ("training.deepspeed", cfg.training.deepspeed),
        *((f"evaluation.paths.{name}", value) for name, value in cfg.evaluation.paths),
        *((f"evaluation.jailbreak_prompt_files.{name}", value) for name, value in cfg.evaluation.jailbreak_prompt_files.items()),
    ]
    if cfg.alignment is not None:
        named += [
            ("alignment.harmful_source", cfg.alignment.harmful_source),
            ("alignment.benign_source", cfg.alignment.benign_source),
        ]
    return [(field, Path(value)) for field, value in named if value is not None]


def check_file_system(cfg: ExperimentConfig, source: str) -> None:
    """Fail with one line when an input file is a directory or the output directory cannot be written."""
    from sarft_ray.paths import check_output_dir

    for field, file in input_files(cfg):
        if file.is_dir():
            raise SarftError(f"{source}: {field}: {file}: is a directory, not a file")
    try:
        check_output_dir(cfg.experiment_dir)
    except SarftError as exc:
        raise SarftError(f"{source}: output_root: {exc}") from None


def config_hash(*parts: Any, length: int = 12) -> str:
    """A short, stable hash of JSON-able parts (configs, file digests, settings)."""
    from sarft_ray.hashing import json_digest

    return json_digest(parts, length)
