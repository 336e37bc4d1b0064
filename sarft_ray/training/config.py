"""The ``training`` section of an experiment config (RBO: CE + lambda * KL on harmful rows)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from sarft_ray.config_base import ConfigPath, StrictModel, without_added_defaults


def _registered_selection(name: str) -> str:
    from sarft_ray.scoring.selection import check_selection_name

    return check_selection_name(name)


SelectionName = Annotated[str, AfterValidator(_registered_selection)]
"""A name from the selection registry (:mod:`sarft_ray.scoring.selection`), checked when the config is read."""

# Scoring and training must cut samples alike (RDS flags describe the tokens training learns).
SHARED_WITH_SCORING = ("max_source_tokens", "max_target_tokens")
# How the model computes a step, not what (training/compute.py): left out of every hash that names a trained model.
COMPUTE_FIELDS = ("attn_implementation", "gradient_checkpointing", "packing")
# Fields that change how a run is executed but not what it computes: left out of the run hash (so a run
# restarted with other fault-tolerance settings resumes the same checkpoints) and of the results key.
OPERATIONAL_FIELDS = (
    "checkpoint_every", "keep_checkpoints", "max_failures", "fail_at_step", "cpus_per_worker", *COMPUTE_FIELDS,
)
# Left out of the run hash and the results key: the above, and the DeepSpeed file's path (its content is hashed).
NOT_HASHED = (*OPERATIONAL_FIELDS, "deepspeed")

# The authors' release form of the loss; ``release_form: true`` selects all three at once.
RELEASE_LOSS = {"kl_direction": "ref_to_policy", "kl_span": "all", "ce_norm": "sequence"}


class TrainingConfig(StrictModel):
    """How one role is fine-tuned. Defaults follow docs/method.md; batch sizes are per worker."""

    mode: Literal["lora", "full"] = "lora"
    selection: SelectionName = Field(
        default="rds", description="which rows carry the KL term: a registered selection strategy; 'none' is plain SFT"
    )
    lambda_kl: float = Field(default=0.5, ge=0.0, allow_inf_nan=False, description="weight of the KL term")
    kl_direction: Literal["ref_to_policy", "policy_to_ref"] = Field(
        default="ref_to_policy", description="ref_to_policy = KL(p_ref||p_theta) (release); policy_to_ref = the paper's formula"
    )
    kl_span: Literal["all", "answer"] = Field(default="all", description="positions averaged in KL_b")
    ce_norm: Literal["answer", "sequence"] = Field(default="answer", description="CE_b divided by answer or by all tokens")
    release_form: bool = Field(
        default=False, description="the authors' release loss: KL(ref||theta) over all tokens, sequence-normalised CE"
    )

    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1, description="optimizer steps; overrides epochs when set")
    lr: float = Field(default=2e-4, gt=0.0)
    lr_schedule: str = Field(
        default="constant",
        description="a transformers.get_scheduler name: constant, linear, cosine, cosine_with_min_lr, polynomial, ...",
    )
    lr_scheduler_kwargs: dict[str, float | int | str] = Field(
        default_factory=dict, description="the schedule's own settings (e.g. min_lr_rate for cosine_with_min_lr)"
    )
    warmup_steps: int = Field(default=0, ge=0, description="linear warmup from 0; 'constant' becomes constant_with_warmup")
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0, description="warmup as a fraction of all steps (rounded up)")
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, ge=0.0, description="0 disables clipping")
    micro_batch_size: int = Field(default=8, ge=1, description="rows per forward pass on one worker")
    grad_accum_steps: int = Field(default=1, ge=1)

    lora_r: int = Field(default=32, ge=1)
    lora_alpha: float = Field(default=64.0, gt=0.0)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    lora_target_modules: Annotated[list[str], Field(min_length=1)] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], description="module names, or all-linear (every linear layer but the output head)"
    )

    deepspeed: ConfigPath | None = Field(default=None, description="ZeRO config JSON; null: configs/ds_zero2.json")
    workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0.0)
    gpus_per_worker: float = Field(default=0.0, ge=0.0)
    checkpoint_every: int = Field(default=0, ge=0, description="optimizer steps between checkpoints; 0: none before the end")
    keep_checkpoints: int = Field(default=2, ge=1)
    max_failures: int = Field(default=2, ge=0, description="worker-group restarts before the run fails")
    fail_at_step: int | None = Field(
        default=None, ge=1, description="fault injection: one worker dies once at this step (env SARFT_FAIL_AT_STEP)"
    )
    seed: int = 0
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        default="auto", description="attention kernel; auto: flash_attention_2 on CUDA if flash_attn is installed, else sdpa"
    )
    gradient_checkpointing: Literal["auto"] | bool = Field(
        default="auto", description="recompute activations in backward; auto: on for full fine-tuning on a GPU"
    )
    packing: Literal["auto"] | bool = Field(
        default="auto",
        description="drop padding: a micro-batch's rows run as one sequence with position ids restarting per row; "
        "auto: on with flash_attention_2 (its variable-length kernel attends within each row only)",
    )

    use_system_prompt: bool = Field(default=False, description="prefix the role prompt P_r to training inputs")
    max_source_tokens: int = Field(default=512, ge=1)
    max_target_tokens: int = Field(default=128, ge=1)

    @model_validator(mode="after")
    def _release_form_is_consistent(self):
        if self.release_form:
            clash = [k for k, v in RELEASE_LOSS.items() if k in self.model_fields_set and getattr(self, k) != v]
            if clash:
                raise ValueError(f"release_form fixes {', '.join(clash)}; remove {'them' if len(clash) > 1 else 'it'}")
        return self

    @field_validator("lr_schedule")
    @classmethod
    def _known_schedule(cls, name: str) -> str:
        from sarft_ray.training.schedule import check_schedule_name

        return check_schedule_name(name)

    @model_validator(mode="after")
    def _one_warmup(self):
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("set warmup_steps or warmup_ratio, not both")
        from sarft_ray.training.schedule import check_schedule_settings

        check_schedule_settings(self)
        return self

    def hashed_settings(self, exclude: set[str]) -> dict:
        """The settings that name a trained model in its run hash: all but ``exclude``; settings added later
        are left out at their default, so the hashes of runs that do not use them stay as they were."""
        settings = without_added_defaults(self.model_dump(mode="json", exclude=exclude))
        if "lr_schedule" in settings:  # the schedule that runs: a run stored when a warmup was ignored is not reused
            settings["lr_schedule"] = self.schedule_name
        return settings

    @property
    def schedule_name(self) -> str:
        """The schedule that runs: with a warmup, 'constant' is constant_with_warmup (a warmup is never ignored)."""
        warmup = self.warmup_steps or self.warmup_ratio
        return "constant_with_warmup" if self.lr_schedule == "constant" and warmup else self.lr_schedule

    def loss_settings(self) -> dict:
        """kl_direction / kl_span / ce_norm as they apply (release_form substitutes the release's)."""
        if self.release_form:
            return dict(RELEASE_LOSS)
        return {"kl_direction": self.kl_direction, "kl_span": self.kl_span, "ce_norm": self.ce_norm}

    @property
    def global_batch_size(self) -> int:
        """Rows per optimizer step over all workers."""
        return self.micro_batch_size * self.grad_accum_steps * self.workers
