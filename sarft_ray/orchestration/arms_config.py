"""The ``arms`` and ``compare_to`` sections of an experiment config: the methods ``run`` compares.

Arms: the methods ``run`` trains on every role and compares. Each arm names a
``selection`` and overrides any other field of the ``training`` section::

    arms:
      - {name: sft, selection: none}                 # plain SFT
      - {name: sarft, selection: rds, lambda_kl: 1.0}
    compare_to: sft     # default: the first arm with selection none; none such: no deltas
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, create_model, model_serializer
from pydantic_core import InitErrorDetails, PydanticCustomError

from sarft_ray.config_base import StrictModel
from sarft_ray.training.config import SHARED_WITH_SCORING, SelectionName, TrainingConfig

ARM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
RESERVED_ARM_NAMES = ("base", "mean")  # row labels of the run's table


class _Arm(StrictModel):
    """Behaviour of ``ArmConfig``; its fields are made from ``TrainingConfig`` below."""

    @model_serializer(mode="wrap")
    def _as_given(self, handler):
        # an arm is written back as it was given, not with every training field null
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}

    def overrides(self) -> dict[str, Any]:
        """The training fields this arm sets (``selection`` included)."""
        return {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set and k != "name"}

    def training(self, base: TrainingConfig) -> TrainingConfig:
        """The arm's training settings: ``base`` (the training section) with the overrides applied."""
        return TrainingConfig.model_validate({**base.model_dump(exclude_unset=True), **self.overrides()})


def _optional(name: str) -> tuple[Any, Any]:
    """A training field as an arm key: the same type and bounds, default None (keep the section's value)."""
    info = TrainingConfig.model_fields[name]
    annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return annotation | None, Field(default=None, description=info.description)


ArmConfig = create_model(
    "ArmConfig",
    __base__=_Arm,
    __doc__="One method ``run`` trains on every role: a name, a selection and optional training-field overrides.",
    name=(str, Field(min_length=1, max_length=40, pattern=ARM_NAME, description="row label and MLflow key")),
    selection=(SelectionName, Field(description="rows carrying the KL term (a registered selection strategy)")),
    **{name: _optional(name) for name in TrainingConfig.model_fields if name != "selection"},
)


def _arm_error(index: int, field: str | tuple, message: str, given: Any) -> InitErrorDetails:
    loc = (index, *field) if isinstance(field, tuple) else (index, field)
    return InitErrorDetails(type=PydanticCustomError("value_error", "{m}", {"m": message}), loc=loc, input=given)


def check_arms(arms: list | None, info: ValidationInfo) -> list | None:
    """Arm names unique and not reserved; overrides valid on top of the training section.

    Errors name the arm's field, e.g. ``arms[1].release_form: ...``.
    """
    if arms is None:
        return None
    base = info.data.get("training")
    problems: list[InitErrorDetails] = []
    seen: set[str] = set()
    for i, arm in enumerate(arms):
        if arm.name.lower() in RESERVED_ARM_NAMES:
            problems.append(_arm_error(i, "name", f"'{arm.name}' is a row of the table; choose another name", arm.name))
        elif arm.name.lower() in seen:
            problems.append(_arm_error(i, "name", f"arm name '{arm.name}' is used twice", arm.name))
        seen.add(arm.name.lower())
        for field in SHARED_WITH_SCORING:
            if field in arm.model_fields_set:
                message = "scoring shares this length; set it in the training section"
                problems.append(_arm_error(i, field, message, getattr(arm, field)))
        if base is None:  # the training section failed; its own errors are reported
            continue
        try:
            arm.training(base)
        except ValidationError as exc:
            for err in exc.errors():
                message = err["msg"].removeprefix("Value error, ")
                problems.append(_arm_error(i, tuple(err["loc"]), message, arm.overrides()))
    if problems:
        raise ValidationError.from_exception_data("arms", problems)
    return arms


def check_compare_to(name: str | None, info: ValidationInfo) -> str | None:
    """``compare_to`` names one of the arms."""
    if name is None or "arms" not in info.data:  # a failed arms list reports its own errors
        return name
    arms = info.data["arms"]
    if arms is None:
        raise ValueError("names an arm, but the config lists no arms")
    names = [a.name for a in arms]
    if name not in names:
        raise ValueError(f"unknown arm '{name}'; the arms are {', '.join(names)}")
    return name


Arms = Annotated[list[ArmConfig] | None, Field(min_length=1), AfterValidator(check_arms)]
"""The ``arms`` key: null (one arm, the training section) or a list of ``ArmConfig``."""

CompareTo = Annotated[str | None, AfterValidator(check_compare_to)]
"""The ``compare_to`` key: the arm every other arm is compared with."""
