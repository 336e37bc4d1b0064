"""``align_model``: build a safety-aligned starting model (what ``sarft-ray align`` runs).

Output, under ``<output_root>/<experiment>/align/<hash>/`` (``<hash>`` covers the
base model, the data files and every alignment setting; the unaligned model's
answers live beside it in ``distill-<model hash>/``, shared by every setting)::

    data.json            row counts and the instructions held out of the benign pool
    benign_eval.jsonl    held-out benign instructions (the over-refusal check)
    train/model/         the aligned model (safetensors + tokenizer): usable as model.ref
    summary.json         written last: the held-out check before and after, against the targets

Steps: (1) build the rows (``alignment.data``); (2) distil benign answers from the
unaligned model, greedy; (3) full fine-tuning with the training recipe (plain SFT,
on Ray Train unless ``use_ray`` is false); (4) evaluate the unaligned and the
aligned model on held-out AdvBench, BeaverTails test prompts, benign instructions
and RoleBench SPE questions. Each step's output is cached, so a re-run resumes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from sarft_ray.alignment.inputs import alignment_inputs, build_rows
from sarft_ray.atomic import write_json, write_text
from sarft_ray.errors import SarftError

log = logging.getLogger(__name__)

CHECK_KEYS = ("advbench_rr", "beavertails_rr", "benign_rr", "rolebench_spe_rouge_l_first")


@dataclass(frozen=True)
class AlignResult:
    directory: Path
    model_dir: Path
    summary: dict
    reused: bool

    def lines(self) -> list[str]:
        check = self.summary["check"]
        out = [f"aligned model {'reused' if self.reused else 'written'}: {self.model_dir}"]
        out.append("| metric | unaligned | aligned | target | met |")
        out.append("|---|---|---|---|---|")
        for row in check["rows"]:
            met = {True: "yes", False: "NO", None: "-"}[row["met"]]
            out.append(f"| {row['metric']} | {_fmt(row['unaligned'])} | {_fmt(row['aligned'])} | {row['target']} | {met} |")
        out.append(f"rows: {self.summary['data']['rows']}; summary: {self.directory / 'summary.json'}")
        return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def distill_dir(cfg) -> Path:
    """Where the unaligned model's answers are kept: by model and decoding settings only, so that
    changing the alignment's training settings or data sizes reuses every answer already made."""
    from sarft_ray.config import config_hash
    from sarft_ray.models.identity import model_identity

    generation = cfg.evaluation.generation.model_dump(mode="json", include={"max_prompt_tokens"})
    key = config_hash(model_identity(cfg.model), cfg.alignment.distill_max_new_tokens, generation)
    return Path(cfg.experiment_dir) / "align" / f"distill-{key}"


def distill_item_id(instruction: str) -> str:
    """The item id of an instruction to distil: its hash, so answers are found again whatever the order."""
    from sarft_ray.hashing import text_digest

    return f"distill-{text_digest(instruction, 16)}"


def distill(cfg, instructions: list[str], directory: Path) -> pa.Table:
    """The unaligned model's greedy answers (stored answers in ``directory`` are reused per instruction)."""
    from sarft_ray.evaluation.benchmarks import ITEM_SCHEMA
    from sarft_ray.evaluation.runner import generate_all

    rows = [
        {"benchmark": "distill", "item_id": distill_item_id(text), "role": None,
         "category": None, "goal": text, "user": text, "system": None, "references": []}
        for text in instructions
    ]
    generation = cfg.evaluation.generation.model_copy(
        update={"max_new_tokens": cfg.alignment.distill_max_new_tokens, "do_sample": False}
    )
    ev = cfg.evaluation.model_copy(update={"generation": generation})
    tables, _ = generate_all({"distill": pa.Table.from_pylist(rows, schema=ITEM_SCHEMA)}, directory, cfg.model, None, ev, cfg.ray, False)
    return tables["distill"]


def benign_rows(answers: pa.Table, cut_off: str = "drop", role_questions: frozenset[str] = frozenset()) -> tuple[list[dict], dict]:
    """Keep answers that ended within the token budget (or, with ``cut_off: last_sentence``, a cut-off one up to
    its last full sentence) and do not open like a refusal; count the kept answers to ``role_questions``.

    The filter is a fixed rule of this stage (``opens_like_refusal``), not the
    evaluation judge, so the training data does not change when a judge does.
    """
    from sarft_ray.alignment.data import last_full_sentences, opens_like_refusal

    kept, cut, trimmed, refused = [], 0, 0, 0
    for row in answers.to_pylist():
        response = row["response"].strip()
        if not row["finished"] and response and cut_off == "last_sentence":
            response = last_full_sentences(response) or ""
            trimmed += bool(response)
        if not response or (not row["finished"] and cut_off == "drop"):
            cut += 1
        elif opens_like_refusal(response):
            refused += 1
        else:
            kept.append({"input": row["goal"], "output": response, "kind": "benign"})
    counts = {"benign_cut_off": cut, "benign_refusals_dropped": refused}
    if cut_off != "drop":
        counts["benign_trimmed_to_last_sentence"] = trimmed
    if role_questions:
        counts["role_questions_trained"] = sum(r["input"] in role_questions for r in kept)
    return kept, counts


def train_aligned(cfg, rows: list[dict], directory: Path, use_ray: bool) -> dict:
    """Full fine-tuning on ``rows`` with the training recipe; the model lands in ``directory/model``."""
    from sarft_ray.training.checkpointing import FINAL, LocalCheckpoints, install_final
    from sarft_ray.training.recipe import TrainJob

    training = cfg.alignment.training
    job = TrainJob(
        model=cfg.model.model_dump(mode="json"),
        training=training.model_dump(mode="json"),
        rows=[{"input": r["input"], "output": r["output"], "is_harmful": False} for r in rows],
        run_dir=str(directory.resolve()),
        role="alignment",
        meta={"selection": "none", "stage": "alignment"},
    )
    if (directory / "summary.json").is_file():
        return json.loads((directory / "summary.json").read_text())
    if use_ray:
        from sarft_ray.ray_utils import init_ray
        from sarft_ray.storage import run_storage
        from sarft_ray.training.ray_trainer import fit

        init_ray(cfg.ray)
        return fit(job, output_dir=directory, storage_path=run_storage(cfg.ray.storage_path, directory, cfg.output_root), name="ray")
    from sarft_ray.training.recipe import train

    store = LocalCheckpoints(directory / "checkpoints", keep=training.keep_checkpoints)
    train(job, store)
    with store.latest() as latest:
        return install_final(latest / FINAL, directory)


def check_config(cfg, benign_file: Path):
    """The experiment config with the held-out check as its evaluation section."""
    from sarft_ray.evaluation.config import LimitsConfig

    ev, check = cfg.evaluation, cfg.alignment.check
    checked = ev.model_copy(
        update={
            "benchmarks": ["rolebench_spe", "advbench", "beavertails", "benign"],
            "jailbreaks": [],
            "limit": None,
            "limits": LimitsConfig(advbench=check.advbench, beavertails=check.beavertails, rolebench_spe=check.rolebench_spe),
            "paths": ev.paths.model_copy(update={"benign": benign_file}),
            "beavertails_split": ev.beavertails_split.model_copy(update={"use": "test"}),
        }
    )
    return cfg.with_updates(evaluation=checked, alignment=None)  # evaluate exactly the model named, nothing aligned


def check_rows(before: dict, after: dict, check) -> list[dict]:
    """Each checked metric before and after alignment, its target and whether the aligned model meets it."""
    spe_before = before.get("rolebench_spe_rouge_l_first")
    targets = {
        "advbench_rr": (f">= {check.min_advbench_rr:g}", lambda v: v >= check.min_advbench_rr),
        "beavertails_rr": (f">= {check.min_beavertails_rr:g}", lambda v: v >= check.min_beavertails_rr),
        "benign_rr": (f"<= {check.max_benign_rr:g}", lambda v: v <= check.max_benign_rr),
        "rolebench_spe_rouge_l_first": (
            f">= unaligned - {check.max_rouge_drop:g}",
            lambda v: spe_before is not None and v >= spe_before - check.max_rouge_drop,
        ),
    }
    rows = []
    for key in CHECK_KEYS:
        target, meets = targets[key]
        value = after.get(key)
        rows.append({"metric": key, "unaligned": before.get(key), "aligned": value, "target": target,
                     "met": None if value is None else bool(meets(value))})
    return rows


def align_model(cfg, force: bool = False, use_ray: bool = True) -> AlignResult:
    """Align ``cfg.model`` as ``cfg.alignment`` says, or return the stored result made from the same inputs."""
    from sarft_ray.config import config_hash
    from sarft_ray.evaluation.runner import evaluate_model

    if cfg.alignment is None:
        raise SarftError(f"{cfg.source or 'config'}: no alignment section")
    directory = Path(cfg.experiment_dir) / "align" / config_hash(alignment_inputs(cfg), length=16)
    done = directory / "summary.json"
    model_dir = directory / "train" / "model"
    if done.is_file() and not force:
        return AlignResult(directory, model_dir, json.loads(done.read_text()), reused=True)

    inputs = build_rows(cfg)
    benign = inputs.benign
    benign_file = directory / "benign_eval.jsonl"
    write_text(benign_file, "".join(json.dumps({"instruction": t}, ensure_ascii=False) + "\n" for t in benign.eval))
    answers = distill(cfg, benign.train, distill_dir(cfg))
    asked_roles = frozenset(inputs.role_questions)
    kept, dropped = benign_rows(answers, cfg.alignment.cut_off, asked_roles)
    if asked_roles and dropped["role_questions_trained"] < len(asked_roles) / 2:
        log.warning(
            "alignment.role_questions: only %d of %d answers to character questions are trained on (%d answers cut off "
            "at distill_max_new_tokens=%d); raise it or set alignment.cut_off: last_sentence",
            dropped["role_questions_trained"], len(asked_roles), dropped["benign_cut_off"], cfg.alignment.distill_max_new_tokens,
        )
    rows = inputs.harmful + kept
    data = {"rows": len(rows), "harmful": sum(r["kind"] == "harmful" for r in rows),
            "harmful_imperative": sum(r["kind"] == "harmful_imperative" for r in rows), "benign": len(kept),
            "benign_eval": len(benign.eval), "benign_excluded_as_evaluation": benign.excluded,
            "role_questions_asked": cfg.alignment.role_questions, **dropped}
    write_json(directory / "data.json", data)
    log.info("alignment data: %s", data)
    training = train_aligned(cfg, rows, directory / "train", use_ray)

    checked = check_config(cfg, benign_file)
    before = evaluate_model(checked).table
    after = evaluate_model(checked, model=str(model_dir)).table
    summary = {
        "model": str(model_dir),
        "base": cfg.model.ref,
        "data": data,
        "training": {k: training.get(k) for k in ("rows", "steps", "final_step", "first_loss", "last_loss", "seconds")},
        "check": {
            "rows": check_rows(before["headline"], after["headline"], cfg.alignment.check),
            "unaligned": {"headline": before["headline"], "benchmarks": before["benchmarks"], "eval_dir": before["model"]["hash"]},
            "aligned": {"headline": after["headline"], "benchmarks": after["benchmarks"], "eval_dir": after["model"]["hash"]},
        },
    }
    write_json(done, summary)
    return AlignResult(directory, model_dir, summary, reused=False)


def starting_config(cfg, use_ray: bool = True):
    """The config every later stage runs on: with an ``alignment`` section, the aligned model as ``model.ref``.

    Aligns first when no stored aligned model matches the inputs. The section
    is dropped from the returned config, so calling this again is a no-op.
    """
    if cfg.alignment is None:
        return cfg
    result = align_model(cfg, use_ray=use_ray)
    model = cfg.model.model_copy(update={"ref": str(result.model_dir.resolve())})
    return cfg.model_copy(update={"model": model, "alignment": None})
