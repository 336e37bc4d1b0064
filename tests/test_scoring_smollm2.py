"""The RDS core on the real SmolLM2-135M-Instruct: batched and prefix-shared scores equal the plain definition."""

from __future__ import annotations

import pytest

from sarft_ray.data import CorpusConfig, PromptsConfig, load_corpus, load_role_prompts
from sarft_ray.models import encode_pair, load_model_and_tokenizer
from sarft_ray.scoring.config import ScoringConfig
from sarft_ray.scoring.core import score_role_samples, shared_prefix_ids
from sarft_ray.scoring.logprob import reference_logprob

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    return load_model_and_tokenizer("smollm2-135m-instruct")


@pytest.mark.parametrize("prefix_reuse", [True, False])
def test_smollm2_batched_scores_equal_the_per_sample_definition(shared_data, smollm2, prefix_reuse):
    role = "Walt Kowalski"
    corpus = CorpusConfig(
        paths=[
            {"path": shared_data / "rolebench/role-generalization/role_specific/test.jsonl"},
            {"path": shared_data / "rolebench/role-generalization/general/test.jsonl"},
        ],
        max_samples_per_role=3,
    )
    rows = load_corpus(corpus, [role]).to_pylist()[:3]
    prompts = load_role_prompts(PromptsConfig(path=shared_data / "sarft_profiles/role_and_unsafe_prompts.json"), [role])[role]
    model, tokenizer = smollm2
    cfg = ScoringConfig(batch_size=3, prefix_reuse=prefix_reuse, reference_pass=True, max_target_tokens=64)
    inputs, outputs = [r["input"] for r in rows], [r["output"] for r in rows]

    result = score_role_samples(model, tokenizer, prompts, inputs, outputs, cfg)
    assert result.prefix_fallbacks == 0
    if prefix_reuse:  # the role prompt is most of each sequence, so sharing it is what saves time
        assert len(shared_prefix_ids(tokenizer, prompts.role_prompt)) > 100
    for i, (question, answer) in enumerate(zip(inputs, outputs, strict=True)):
        for name, system in (("role", prompts.role_prompt), ("unsafe", prompts.unsafe_prompt), ("none", None)):
            pair = encode_pair(tokenizer, question, answer, system, cfg.max_source_tokens, cfg.max_target_tokens)
            total = reference_logprob(model, pair.prompt_ids, pair.answer_ids)
            assert result.columns[f"logp_{name}_mean"][i] == pytest.approx(total / len(pair.answer_ids), abs=1e-4)
            assert result.columns[f"logp_{name}_sum"][i] == pytest.approx(total, abs=1e-3)
