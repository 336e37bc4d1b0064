"""``sarft-ray validate``: check a config's inputs without loading models or starting Ray."""

from __future__ import annotations

from pathlib import Path

from sarft_ray.capacity import validate_lines as capacity_lines
from sarft_ray.config import ExperimentConfig
from sarft_ray.data import load_corpus, load_role_prompts
from sarft_ray.errors import SarftError
from sarft_ray.models.loading import ALIASES, _looks_like_path, alias_suggestion
from sarft_ray.scoring.store import experiment_heldout


def check_model_ref(ref: str, field: str = "model.ref") -> str:
    """Describe a model reference without loading it, failing when it is a path that cannot exist or a misspelled alias.

    ``field`` names where the reference came from (``model.ref``, ``--model``).
    """
    if ref in ALIASES:
        return f"alias {ref}"
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").exists():
            raise SarftError(f"{field}: {ref}: directory has no config.json")
        return f"local {'GGUF file' if path.suffix == '.gguf' else 'checkpoint'} {path}"
    if _looks_like_path(ref):
        raise SarftError(f"{field}: {ref}: model path does not exist")
    suggestion = alias_suggestion(ref)
    if suggestion:
        raise SarftError(f"{field}: {ref}: not a model alias or an existing path (did you mean '{suggestion}'?)")
    return f"hub id {ref} (not checked offline)"


def check_inputs(cfg: ExperimentConfig) -> list[str]:
    """Read every input the config names; return one human-readable line per check."""
    lines = [f"model: {check_model_ref(cfg.model.ref)}"]
    lines += capacity_lines(cfg)  # every stage's actors and workers fit the local cluster
    removed: dict[str, int] = {}
    corpus = load_corpus(cfg.roles.corpus, cfg.roles.names, heldout=experiment_heldout(cfg), removed=removed)
    counts = corpus.group_by(["role", "split"]).aggregate([("sample_id", "count")]).to_pylist()
    for role in cfg.roles.names:
        per_split = {c["split"]: c["sample_id_count"] for c in counts if c["role"] == role}
        validation = f" / {per_split['validation']} validation" if per_split.get("validation") else ""
        lines.append(
            f"role {role}: {per_split.get('train', 0)} train{validation} / {per_split.get('test', 0)} test samples "
            f"({removed.get(role, 0)} evaluation question(s) held out of training)"
        )
    load_role_prompts(cfg.roles.prompts, cfg.roles.names)
    lines.append(f"prompts: {len(cfg.roles.names)} roles found in {cfg.roles.prompts.path}")
    lines.extend(_stage_checks(cfg))
    return lines


def _stage_checks(cfg: ExperimentConfig) -> list[str]:
    """Files the training and evaluation stages will read: the DeepSpeed config and benchmarks."""
    import json

    from sarft_ray.data.readers import read_text
    from sarft_ray.evaluation.benchmarks import check_lines

    lines = []
    if cfg.training.deepspeed is not None:
        path = cfg.training.deepspeed
        try:
            json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise SarftError(f"{path}:{exc.lineno}: DeepSpeed config is not valid JSON ({exc.msg})") from None
        lines.append(f"deepspeed: {path}")
    lines += check_lines(cfg.evaluation)  # each asked benchmark's file, read
    from sarft_ray.evaluation.judges import check_judge

    lines.append(check_judge(cfg.evaluation))  # the key's variable is set, the URL carries no credentials
    return lines
