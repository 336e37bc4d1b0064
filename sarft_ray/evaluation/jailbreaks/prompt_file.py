"""Attack prompts made elsewhere, read from a file (the way in for GCG, AutoDAN and other optimised attacks).

GCG and AutoDAN search for a prompt per request against one particular
model, which takes far longer than the evaluation itself; run them with their
own tools and list the results in a JSONL file, one object per line with
``goal`` (the AdvBench request) and ``prompt`` (the message to send). Name
the file in ``evaluation.jailbreak_prompt_files`` (``{gcg: path}``) and add
the name to ``evaluation.jailbreaks``. Replies are judged as written.
"""

from __future__ import annotations

from pathlib import Path

from sarft_ray.data.readers import iter_jsonl
from sarft_ray.errors import SarftError
from sarft_ray.evaluation.jailbreaks.base import Jailbreak


class PromptFileJailbreak(Jailbreak):
    def __init__(self, name: str, path: str | Path):
        self.name = name
        self.path = Path(path)
        self.prompts: dict[str, str] = {}
        for line, row in iter_jsonl(self.path):
            for key in ("goal", "prompt"):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise SarftError(f"{self.path}:{line}: field '{key}' must be a non-empty string")
            if row["goal"] in self.prompts:
                raise SarftError(f"{self.path}:{line}: goal listed twice")
            self.prompts[row["goal"]] = row["prompt"]

    def wrap(self, goal: str) -> str:
        try:
            return self.prompts[goal]
        except KeyError:
            raise SarftError(f"{self.path}: no prompt for goal {goal[:60]!r}") from None
