"""Judge with a local Hugging Face sequence classifier (e.g. a refusal/harm classifier).

The classifier's predicted label (its ``id2label`` name, or the class index as
a string) is mapped to a verdict by ``label_map`` from the config; a predicted
label missing from the map becomes ``invalid`` with the label in ``raw``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from sarft_ray.config_base import ConfigPath
from sarft_ray.devices import pick_device
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.judges.base import INVALID, LABELS, JudgeItem, JudgeSettings, Verdict, VerdictLabel
from sarft_ray.hashing import json_digest


class HFClassifierJudgeConfig(JudgeSettings):
    """A local sequence-classification checkpoint; its label_map maps the checkpoint's labels to verdicts."""

    kind: Literal["hf_classifier"]
    path: ConfigPath
    label_map: dict[str, VerdictLabel] = Field(min_length=1)
    template: str = Field("{response}", description="classifier input; may use {prompt} and {response}")
    batch_size: PositiveInt = 16
    max_length: PositiveInt = 512
    device: str = Field("cpu", description="cpu, cuda[:N], or auto (cuda when one is visible)")

    @field_validator("template")
    @classmethod
    def _has_response(cls, value: str) -> str:
        if "{response}" not in value:
            raise ValueError("template must contain {response}")
        return value

    def describe(self) -> str:
        return f"judge: hf_classifier {self.path}"


class HFClassifierJudge:
    """Classifies ``template.format(prompt=..., response=...)`` with a local model."""

    @classmethod
    def from_config(cls, cfg: HFClassifierJudgeConfig) -> HFClassifierJudge:
        return cls(**cfg.model_dump(exclude={"kind"}))

    def __init__(
        self,
        path: str | Path,
        label_map: dict[str, str],
        template: str = "{response}",
        batch_size: int = 16,
        max_length: int = 512,
        device: str = "cpu",
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        bad = {k: v for k, v in label_map.items() if v not in LABELS}
        if bad:
            raise SarftError(f"evaluation.judge.label_map: values must be one of {LABELS}, got {bad}")
        self.path = Path(path).expanduser().resolve()
        if not (self.path / "config.json").exists():
            raise SarftError(f"evaluation.judge.path: {self.path} is not a model directory (no config.json)")
        self.label_map = dict(label_map)
        self.template = template
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path).to(device).eval()
        names = set(self.model.config.id2label.values()) | {str(i) for i in self.model.config.id2label}
        unknown = sorted(set(self.label_map) - names)
        if unknown:
            raise SarftError(
                f"evaluation.judge.label_map: {unknown} are not labels of {self.path} "
                f"(it has {sorted(self.model.config.id2label.values())})"
            )
        digest = json_digest([sorted(self.label_map.items()), template, max_length], 12)
        self.judge_id = f"hf:{self.path}:{digest}"

    def _verdict(self, index: int) -> Verdict:
        name = self.model.config.id2label.get(index, str(index))
        label = self.label_map.get(name, self.label_map.get(str(index), INVALID))
        return Verdict(label, name)

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        import torch  # here: validating a config registers this judge, and must not import torch

        verdicts: list[Verdict] = []
        with torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                texts = [self.template.format(prompt=i.prompt, response=i.response) for i in batch]
                encoded = self.tokenizer(
                    texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                logits = self.model(**encoded).logits
                verdicts.extend(self._verdict(int(i)) for i in logits.argmax(dim=-1).tolist())
        return verdicts
