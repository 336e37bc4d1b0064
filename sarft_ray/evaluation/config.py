"""The ``evaluation`` section of an experiment config.

``benchmarks``, ``limits`` and ``paths`` take their names from the benchmark
registry (:mod:`sarft_ray.evaluation.benchmarks`), ``jailbreaks`` from the
jailbreak registry and ``judge`` from the judge registry
(:mod:`sarft_ray.evaluation.judges`): what is registered before the config
is validated is accepted, anything else is an error naming the field.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from sarft_ray.config_base import ConfigPath, StrictModel, pool_bounds

BENCHMARKS: tuple[str, ...] = ("rolebench_spe", "rolebench_raw", "advbench", "beavertails")  # the default set


def _benchmark_name(name: str) -> str:
    from sarft_ray.evaluation.benchmarks import check_benchmark_name

    return check_benchmark_name(name)


Benchmark = Annotated[str, AfterValidator(_benchmark_name)]  # a name from the benchmark registry


class GenerationConfig(StrictModel):
    """Decoding settings; greedy unless ``do_sample``."""

    max_new_tokens: PositiveInt = 128
    do_sample: bool = False
    temperature: PositiveFloat = 1.0
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: NonNegativeInt = 0
    seed: int = 0
    batch_size: PositiveInt = 8
    max_prompt_tokens: PositiveInt = Field(2048, description="longer prompts keep their last N tokens")
    system_prompt: Literal["none", "role"] = Field(
        "none", description="none (as in the SaRFT release) or the role's system prompt"
    )


# Keys whose unset (null) entries were in per-benchmark sections when stored results were first named by config
# hashes. A benchmark registered later is dumped only when set, so registering one (a plugin's included) renames
# no stored result, whether or not a process has imported it.
KEYS_IN_HASHES = frozenset(
    {"rolebench_spe", "rolebench_raw", "rolebench_val", "advbench", "beavertails", "benign", "jailbreaks"}
)


class _PerBenchmark(StrictModel):
    """A mapping keyed by registered benchmark names (the keys ``_names`` allows), every one present (null when
    unset); dumps leave out the unset entries of keys outside ``KEYS_IN_HASHES``."""

    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    @classmethod
    @abstractmethod
    def _names(cls) -> list[str]:
        """The keys a subclass allows."""

    @model_validator(mode="before")
    @classmethod
    def _registered_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = cls._names()
        unknown = [key for key in data if key not in names]
        if unknown:
            lines = [{"type": "extra_forbidden", "loc": (key,), "input": data[key]} for key in unknown]
            raise ValidationError.from_exception_data(cls.__name__, lines)
        # every name present, as fields would be: the resolved config (and the hashes made from it) lists them all
        return {name: data.get(name) for name in names}

    @model_serializer(mode="wrap")
    def _dump_without_later_unset(self, handler) -> dict:
        return {k: v for k, v in handler(self).items() if v is not None or k in KEYS_IN_HASHES}


class LimitsConfig(_PerBenchmark):
    """Per-benchmark caps for quick runs (``evaluation.limits.<benchmark>``, and ``jailbreaks``); unset falls
    back to ``evaluation.limit``. What each caps: the benchmark's ``limit_help`` in the registry."""

    __pydantic_extra__: dict[str, PositiveInt | None] = Field(init=False)

    @classmethod
    def _names(cls) -> list[str]:
        from sarft_ray.evaluation.benchmarks import registered_benchmarks

        return [*registered_benchmarks(), "jailbreaks"]  # jailbreaks: first N AdvBench goals per jailbreak


class BenchmarkPaths(_PerBenchmark):
    """Benchmark files (``evaluation.paths.<benchmark>`` for each benchmark that reads one); unset means the
    standard file under the data directory."""

    __pydantic_extra__: dict[str, ConfigPath | None] = Field(init=False)

    @classmethod
    def _names(cls) -> list[str]:
        from sarft_ray.evaluation.benchmarks import get_benchmark, registered_benchmarks

        return [name for name in registered_benchmarks() if get_benchmark(name).reads_file]


# Fields that change how fast answers are made, not the answers or verdicts: left out of the results key. GPU
# shares stay in: a GPU answers in another precision.
OPERATIONAL_FIELDS = (
    "backend", "save_every", "num_actors", "min_actors", "actor_num_cpus", "torch_threads", "cache_verdicts",
)


class BeaverTailsSplit(StrictModel):
    """A category-stratified split of BeaverTails-Evaluation into test, validation and trainable prompts.

    ``use`` says which part the ``beavertails`` benchmark asks: ``all`` (the
    whole file) unless an alignment stage trains on the ``train`` part, in
    which case evaluation asks ``test`` and lambda sweeps ask ``validation``.
    """

    use: Literal["all", "test", "validation"] = "all"
    test_per_category: NonNegativeInt = 14
    validation_per_category: NonNegativeInt = 8
    seed: int = 0


class EvaluationConfig(StrictModel):
    benchmarks: list[Benchmark] = Field(
        default_factory=lambda: list(BENCHMARKS), description="names from the benchmark registry"
    )
    jailbreaks: list[str] = Field(
        default_factory=lambda: ["aim", "caesar", "morse", "code_chameleon"],
        description="names from the jailbreak registry, or keys of jailbreak_prompt_files",
    )
    jailbreak_prompt_files: dict[str, ConfigPath] = Field(
        default_factory=dict,
        description="attack prompts made elsewhere (GCG, AutoDAN): name -> JSONL of {goal, prompt}",
    )
    limit: PositiveInt | None = Field(None, description="default cap for every benchmark")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    paths: BenchmarkPaths = Field(default_factory=BenchmarkPaths)
    beavertails_split: BeaverTailsSplit = BeaverTailsSplit()
    raw_sources: list[str] = Field(
        default_factory=lambda: ["general"],
        description="RAW = held-out (split=test) rows of roles.corpus whose source is one of these (rolebench_val_raw: "
        "its validation rows)",
    )
    spe_sources: list[str] = Field(
        default_factory=lambda: ["role_specific"],
        description="sources of roles.corpus holding role-specific questions (rolebench_val_spe)",
    )
    # any judge's settings: validated by the config model registered for its kind (sarft_ray.evaluation.judges)
    judge: Annotated[SerializeAsAny[StrictModel], Field(validate_default=True)] = Field(
        "keyword", description="kind from the judge registry, with that judge's settings"
    )
    cache_verdicts: bool = True
    generation: GenerationConfig = GenerationConfig()
    backend: Literal["ray", "local"] = Field("ray", description="ray: Ray Data actor pool; local: in-process")
    save_every: PositiveInt = Field(256, description="answers generated between writes (a stopped run keeps them)")
    num_actors: PositiveInt = Field(1, description="generation actors (with min_actors: the most)")
    min_actors: PositiveInt | None = Field(
        None, description="an autoscaling pool: start with this many, grow to num_actors; null: fixed"
    )
    actor_num_cpus: PositiveFloat = Field(0.5, description="fractional on small machines so read tasks still run")
    actor_num_gpus: float = Field(0.0, ge=0)
    torch_threads: PositiveInt | None = Field(
        None, description="CPU threads per generation worker; null keeps Ray's default (the actor's CPU share, min 1)"
    )
    device: str = Field("auto", description="auto: cuda when the actor has a GPU, else cpu")

    _pool_bounds = model_validator(mode="after")(pool_bounds)

    @field_validator("judge", mode="before")
    @classmethod
    def _registered_judge(cls, value: Any, info: ValidationInfo) -> Any:
        from sarft_ray.evaluation.judges import judge_settings

        return judge_settings(value, info.context)  # errors name evaluation.judge.<field>

    @model_validator(mode="after")
    def _known_jailbreaks(self) -> EvaluationConfig:
        from sarft_ray.evaluation.jailbreaks import registered_names

        known = set(registered_names()) | set(self.jailbreak_prompt_files)
        unknown = [name for name in self.jailbreaks if name not in known]
        if unknown:
            raise ValueError(
                f"unknown jailbreak(s) {unknown}; known: {sorted(known)} "
                "(attacks optimised per model, such as GCG, go in jailbreak_prompt_files)"
            )
        if len(set(self.jailbreaks)) != len(self.jailbreaks):
            raise ValueError("jailbreaks lists a name twice")
        return self

    @model_validator(mode="after")
    def _files_of_asked_benchmarks(self) -> EvaluationConfig:
        from sarft_ray.evaluation.benchmarks import get_benchmark

        for name in self.benchmarks:
            spec = get_benchmark(name)
            if spec.file_help and spec.default_file is None and getattr(self.paths, name) is None:
                raise ValueError(f"benchmarks: '{name}' needs paths.{name} ({spec.file_help}; there is no standard file)")
        return self

    def limit_for(self, benchmark: str) -> int | None:
        """The cap of one benchmark (jailbreaks use ``limits.jailbreaks``, else AdvBench's)."""
        if benchmark.startswith("jailbreak"):
            for own in (self.limits.jailbreaks, self.limits.advbench):
                if own is not None:
                    return own
            return self.limit
        own = getattr(self.limits, benchmark, None)
        return own if own is not None else self.limit
